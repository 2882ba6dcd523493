//! Unit tests of the launch description and version checks.

use super::*;
use crate::durable;

fn desc(jar: Option<&str>, args: Option<&str>) -> LaunchDescription {
    LaunchDescription {
        format: 1,
        minecraft: "1.21.1".into(),
        loader: "forge".into(),
        loader_version: "52.0.16".into(),
        java_major: 21,
        jar: jar.map(str::to_owned),
        args_file: args.map(str::to_owned),
    }
}

#[test]
fn launch_descriptions_name_exactly_one_plain_relative_file() {
    assert!(desc(Some("server.jar"), None).check().is_ok());
    assert!(desc(None, Some("libraries/a/unix_args.txt")).check().is_ok());
    assert!(desc(None, None).check().is_err());
    assert!(desc(Some("a.jar"), Some("b.txt")).check().is_err());
    for bad in ["/etc/passwd", "../server.jar", "a/../../b", "", "./server.jar"] {
        assert!(desc(Some(bad), None).check().is_err(), "{bad}");
    }
    let mut d = desc(Some("server.jar"), None);
    d.format = 2;
    assert!(d.check().is_err());
}

#[test]
fn launch_descriptions_round_trip_and_bad_ones_are_state_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    assert_eq!(LaunchDescription::load(tmp.path()).expect("none"), None);
    let path = LaunchDescription::path(tmp.path());
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let d = desc(None, Some("libraries/x/unix_args.txt"));
    durable::write_atomic_json(&path, &d).expect("write");
    assert_eq!(LaunchDescription::load(tmp.path()).expect("load"), Some(d));
    std::fs::write(&path, r#"{"format":1}"#).expect("write");
    let err = LaunchDescription::load(tmp.path()).expect_err("bad");
    assert_eq!(err.exit_code(), crate::exit::LOCAL);
    assert!(err.to_string().contains("launch.json"), "{err}");
}

#[test]
fn loaders_and_versions() {
    use atlas_proto::v1::LoaderKind as K;
    assert_eq!(Loader::from_proto(K::Neoforge as i32), Some(Loader::Neoforge));
    assert_eq!(Loader::from_proto(K::Unspecified as i32), None);
    assert_eq!(Loader::from_proto(99), None);
    assert_eq!(Loader::Quilt.as_str(), "quilt");
    for ok in [
        "1.21.1",
        "24w14a",
        "1.20.5-rc1",
        "0.16.5+build.1",
        "1.20.1-47.3.0",
    ] {
        assert!(check_version("v", ok).is_ok(), "{ok}");
    }
    for bad in ["", "../x", "a/b", "1 2", ".hidden", "a?b"] {
        assert!(check_version("v", bad).is_err(), "{bad}");
    }
}

#[cfg(unix)]
#[test]
fn a_launch_description_that_is_a_link_is_refused_never_read_through() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (dir, outside) = (tmp.path().join("server"), tmp.path().join("outside.json"));
    std::fs::create_dir_all(dir.join(crate::state::STATE_DIR)).expect("mkdir");
    durable::write_atomic_json(&outside, &desc(Some("server.jar"), None)).expect("write");
    std::os::unix::fs::symlink(&outside, LaunchDescription::path(&dir)).expect("symlink");
    let err = LaunchDescription::load(&dir).expect_err("a link");
    assert_eq!(err.exit_code(), crate::exit::LOCAL);
    assert!(
        err.to_string().contains("launch.json is a symbolic link"),
        "{err}"
    );
}
