//! Unit tests of the keyset chain.

use super::*;

fn sk(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

fn payload(version: u64, roots: &[u8], m: u32, pointer: &[u8]) -> KeysetPayload {
    KeysetPayload {
        format: KEYSET_FORMAT,
        pack: "p".into(),
        version,
        issued_at: 1,
        root: RoleKeys {
            keys: roots.iter().map(|n| sk(*n).public().to_text()).collect(),
            threshold: m,
        },
        pointer: RoleKeys {
            keys: pointer.iter().map(|n| sk(*n).public().to_text()).collect(),
            threshold: 1,
        },
        revoked: Vec::new(),
    }
}

fn signed(p: &KeysetPayload, by: &[u8]) -> SignedKeyset {
    let keys: Vec<SecretKey> = by.iter().map(|n| sk(*n)).collect();
    let refs: Vec<&SecretKey> = keys.iter().collect();
    SignedKeyset::parse(&sign(p, &refs)).expect("parse")
}

#[test]
fn chain_follows_rotations_with_both_thresholds() {
    let one = signed(&payload(1, &[1, 2, 3], 2, &[10]), &[1, 2])
        .verify_self("p")
        .expect("root");
    assert_eq!(one.pointer_key_ids(), vec![sk(10).public().key_id()]);
    // Rotate roots 1,2,3 -> 2,3,4 and the pointer key 10 -> 11.
    let p2 = payload(2, &[2, 3, 4], 2, &[11]);
    let two = one.verify_next(&signed(&p2, &[1, 2, 4])).expect("v2");
    assert_eq!(two.version(), 2);
    // Old roots alone (1, 2) do not meet the new keyset's own threshold (2 of 2,3,4 -> only 2).
    let err = one.verify_next(&signed(&p2, &[1, 2])).expect_err("own threshold");
    assert!(
        matches!(
            err,
            KeysetError::Untrusted {
                valid: 1,
                threshold: 2,
                ..
            }
        ),
        "{err}"
    );
    // New roots alone (4, and 2 counts for both) need a second old one.
    let err = one.verify_next(&signed(&p2, &[4, 4])).expect_err("old threshold");
    assert!(matches!(err, KeysetError::Untrusted { valid: 0, .. }), "{err}");
    // Skipping a version is refused.
    let err = one
        .verify_next(&signed(&payload(3, &[1, 2, 3], 2, &[10]), &[1, 2, 3]))
        .expect_err("gap");
    assert_eq!(err, KeysetError::WrongVersion { expected: 2, got: 3 });
}

#[test]
fn duplicate_signatures_count_once_and_unknown_ids_are_ignored() {
    let err = signed(&payload(1, &[1, 2], 2, &[10]), &[1, 1, 9])
        .verify_self("p")
        .expect_err("one key twice");
    assert!(
        matches!(
            err,
            KeysetError::Untrusted {
                valid: 1,
                threshold: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn revocations_are_enforced_and_kept() {
    let one = signed(&payload(1, &[1], 1, &[10, 11]), &[1])
        .verify_self("p")
        .expect("root");
    let mut p2 = payload(2, &[1], 1, &[11]);
    p2.revoked = vec![sk(10).public().key_id()];
    let two = one.verify_next(&signed(&p2, &[1])).expect("v2");
    assert!(two.is_revoked(&sk(10).public().key_id()));
    assert_eq!(two.pointer_keys(), vec![sk(11).public()]);
    // A revoked key may not come back, and the revocation may not be dropped.
    let mut back = payload(3, &[1], 1, &[10]);
    back.revoked = p2.revoked.clone();
    assert!(matches!(
        two.verify_next(&signed(&back, &[1])),
        Err(KeysetError::Invalid { version: 3, .. })
    ));
    assert!(matches!(
        two.verify_next(&signed(&payload(3, &[1], 1, &[10]), &[1])),
        Err(KeysetError::RevocationDropped { version: 3, .. })
    ));
}

#[test]
fn root_files_and_bad_content() {
    let file = format!(
        r#"{{"pack":"p","root":{{"keys":["{}","{}"],"threshold":2}}}}"#,
        sk(1).public().to_text(),
        sk(2).public().to_text()
    );
    let anchor = parse_root(file.as_bytes(), "p").expect("anchor");
    assert_eq!(anchor.version(), 0);
    assert!(anchor.pointer_keys().is_empty());
    let p1 = payload(1, &[1, 2], 2, &[10]);
    assert!(anchor.verify_next(&signed(&p1, &[1])).is_err());
    assert!(anchor.verify_next(&signed(&p1, &[1, 2])).is_ok());
    assert!(matches!(
        parse_root(file.as_bytes(), "q"),
        Err(KeysetError::WrongPack { .. })
    ));
    let env = sign(&p1, &[&sk(1), &sk(2)]);
    assert_eq!(parse_root(&env, "p").expect("keyset root").version(), 1);
    for (m, why) in [(0, "zero"), (3, "more than keys")] {
        let mut p = payload(1, &[1, 2], 2, &[10]);
        p.root.threshold = m;
        assert!(
            matches!(
                signed(&p, &[1, 2]).verify_self("p"),
                Err(KeysetError::Invalid { .. })
            ),
            "{why}"
        );
    }
    assert!(matches!(
        SignedKeyset::parse(&vec![b' '; 70_000]),
        Err(KeysetError::TooLarge)
    ));
    let ptr = sign_envelope(crate::pointer::PAYLOAD_TYPE, b"{}", &[&sk(1)]);
    assert!(matches!(
        SignedKeyset::parse(&ptr),
        Err(KeysetError::WrongPayloadType(_))
    ));
}
