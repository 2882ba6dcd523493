//! The wire format: a 4-byte big-endian length, then one protobuf
//! `Request` or `Reply` of at most [`Limits::ipc_frame_bytes`], and the checks a
//! request must pass before a handler sees it.

use atlas_proto::Limits;
use atlas_proto::runner::v1::{PowerAction, Reply, Request, backup_request, request};
use bytes::Bytes;
use prost::Message as _;
use tokio_util::codec::LengthDelimitedCodec;

use super::IpcError;

/// The codec for both directions: 4-byte big-endian length prefix, frames
/// of at most [`Limits::ipc_frame_bytes`]. A longer length prefix ends the
/// connection before any buffer is reserved for it.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(Limits::DEFAULT.ipc_frame_bytes)
        .new_codec()
}

/// `msg` as one frame's payload (without the length prefix, which the codec
/// adds); [`IpcError::FrameTooLarge`] when it would not fit in a frame.
pub fn encode(msg: &impl prost::Message) -> Result<Bytes, IpcError> {
    let len = msg.encoded_len();
    if len > Limits::DEFAULT.ipc_frame_bytes {
        return Err(IpcError::FrameTooLarge { len });
    }
    Ok(Bytes::from(msg.encode_to_vec()))
}

/// `msg` with its length prefix, as written on the socket.
pub fn encode_frame(msg: &impl prost::Message) -> Result<Vec<u8>, IpcError> {
    let body = encode(msg)?;
    let len = u32::try_from(body.len()).map_err(|_| IpcError::FrameTooLarge { len: body.len() })?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes one frame's payload as a request and checks it
/// ([`validate_request`]).
pub fn decode_request(bytes: &[u8]) -> Result<Request, IpcError> {
    let req = Request::decode(bytes)?;
    validate_request(&req).map_err(IpcError::BadRequest)?;
    Ok(req)
}

/// Decodes one frame's payload as a reply.
pub fn decode_reply(bytes: &[u8]) -> Result<Reply, IpcError> {
    Ok(Reply::decode(bytes)?)
}

/// Why a well-formed message is still not a request the daemon can run: it
/// names no operation, an unknown or unspecified power action, no backup
/// operation, a restore without an id, or a console command that is empty or
/// holds a line break or NUL (one request is one console line).
pub fn validate_request(req: &Request) -> Result<(), String> {
    let Some(kind) = &req.kind else {
        return Err(
            "the request names no operation (status, power, logs, console, backup, update, rollback or events)"
                .into(),
        );
    };
    match kind {
        request::Kind::Power(p) => match PowerAction::try_from(p.action) {
            Ok(PowerAction::Unspecified) | Err(_) => Err(format!(
                "power: action {} is not start, stop, restart or kill",
                p.action
            )),
            Ok(_) => Ok(()),
        },
        request::Kind::Console(c) => {
            if c.command.trim().is_empty() {
                Err("console: the command is empty".into())
            } else if c.command.contains(['\n', '\r', '\0']) {
                Err("console: one command per request (no line breaks or NUL)".into())
            } else {
                Ok(())
            }
        }
        request::Kind::Backup(b) => match &b.op {
            None => Err("backup: the operation is missing (create, list or restore)".into()),
            Some(backup_request::Op::Restore(r)) if r.id.trim().is_empty() => {
                Err("backup restore: the backup id is empty".into())
            }
            Some(_) => Ok(()),
        },
        request::Kind::Status(_)
        | request::Kind::Logs(_)
        | request::Kind::Update(_)
        | request::Kind::Rollback(_)
        | request::Kind::Events(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use atlas_proto::runner::v1::{
        BackupRequest, BackupRestore, ConsoleRequest, LogLine, PowerRequest, StatusRequest, reply,
    };
    use bytes::BytesMut;
    use tokio_util::codec::{Decoder as _, Encoder as _};

    use super::*;

    fn power(action: i32) -> Request {
        Request {
            id: 7,
            kind: Some(request::Kind::Power(PowerRequest { action, wait: true })),
        }
    }

    #[test]
    fn a_request_round_trips_through_the_codec() {
        let req = power(PowerAction::Restart as i32);
        let mut buf = BytesMut::new();
        codec()
            .encode(encode(&req).expect("fits"), &mut buf)
            .expect("encode");
        assert_eq!(
            &buf[..4],
            &(req.encoded_len() as u32).to_be_bytes(),
            "big-endian length prefix"
        );
        assert_eq!(buf[..], encode_frame(&req).expect("fits")[..]);
        let frame = codec().decode(&mut buf).expect("decode").expect("a whole frame");
        assert_eq!(decode_request(&frame).expect("valid"), req);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_reply_round_trips() {
        let r = Reply {
            id: 3,
            last: true,
            kind: Some(reply::Kind::Log(LogLine {
                unix_ms: 1,
                stream: "stdout".into(),
                line: "hi".into(),
            })),
        };
        let bytes = encode(&r).expect("fits");
        assert_eq!(decode_reply(&bytes).expect("decode"), r);
    }

    #[test]
    fn half_a_frame_waits_for_the_rest() {
        let frame = encode_frame(&Request {
            id: 1,
            kind: Some(request::Kind::Status(StatusRequest {})),
        })
        .expect("fits");
        let mut c = codec();
        let mut buf = BytesMut::from(&frame[..frame.len() - 1]);
        assert!(c.decode(&mut buf).expect("no error yet").is_none());
        buf.extend_from_slice(&frame[frame.len() - 1..]);
        assert!(c.decode(&mut buf).expect("decode").is_some());
    }

    #[test]
    fn an_oversized_length_prefix_is_refused_before_allocating() {
        for prefix in [u32::MAX, Limits::DEFAULT.ipc_frame_bytes as u32 + 1] {
            let mut buf = BytesMut::from(&prefix.to_be_bytes()[..]);
            let err = codec().decode(&mut buf).expect_err("too long");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
            assert!(buf.capacity() < 1024, "nothing reserved for the claimed length");
        }
        // Exactly the limit is accepted (it waits for the body).
        let mut buf = BytesMut::from(&(Limits::DEFAULT.ipc_frame_bytes as u32).to_be_bytes()[..]);
        assert!(codec().decode(&mut buf).expect("at the limit").is_none());
    }

    #[test]
    fn a_message_over_the_limit_is_not_encoded() {
        let req = Request {
            id: 1,
            kind: Some(request::Kind::Console(ConsoleRequest {
                command: "x".repeat(Limits::DEFAULT.ipc_frame_bytes),
            })),
        };
        assert!(matches!(encode(&req), Err(IpcError::FrameTooLarge { .. })));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        // Field 1 as a length-delimited field running past the end.
        assert!(matches!(
            decode_request(&[0x0a, 0xff, 0x01]),
            Err(IpcError::Decode(_))
        ));
        assert!(
            matches!(decode_request(&[0xff; 8]), Err(IpcError::Decode(_))),
            "an unterminated varint"
        );
        assert!(matches!(decode_reply(&[0xff; 9]), Err(IpcError::Decode(_))));
    }

    #[test]
    fn requests_that_name_nothing_runnable_are_bad() {
        let bad = |req: Request| matches!(decode_request(&req.encode_to_vec()), Err(IpcError::BadRequest(_)));
        assert!(
            bad(Request { id: 1, kind: None }),
            "no kind (also: the empty message)"
        );
        assert!(matches!(decode_request(&[]), Err(IpcError::BadRequest(_))));
        assert!(bad(power(PowerAction::Unspecified as i32)));
        assert!(bad(power(99)), "an enum value this version does not know");
        assert!(!bad(power(PowerAction::Kill as i32)));
        let backup = |op| Request {
            id: 1,
            kind: Some(request::Kind::Backup(BackupRequest { op })),
        };
        assert!(bad(backup(None)));
        assert!(bad(backup(Some(backup_request::Op::Restore(BackupRestore {
            id: " ".into()
        })))));
        assert!(!bad(backup(Some(backup_request::Op::Restore(BackupRestore {
            id: "b1".into()
        })))));
        let console = |c: &str| Request {
            id: 1,
            kind: Some(request::Kind::Console(ConsoleRequest { command: c.into() })),
        };
        assert!(bad(console("")));
        assert!(bad(console("say hi\nstop")), "no second command smuggled in");
        assert!(bad(console("say \0")));
        assert!(!bad(console("say hello")));
    }
}
