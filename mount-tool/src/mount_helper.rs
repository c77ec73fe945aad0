//! `mount.kmsfs` / `mount.fuse.kmsfs`: the kmsfs binary called under one of
//! these names (a symlink in /sbin) takes mount(8)'s helper convention,
//! `mount.kmsfs CIPHERDIR MOUNTPOINT [-sfnv] [-o OPTIONS] [-t TYPE]`, so
//! that `/etc/fstab` lines of type `fuse.kmsfs` and `mount -t fuse.kmsfs`
//! work. The options become `kmsfs` arguments and the command runs
//! `kmsfs ... mount CIPHERDIR MOUNTPOINT` (in the background: it returns
//! once the mount is live, as mount(8) expects).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// The names under which the binary is a mount helper: mount(8) runs
/// `mount.<type>`, and for `fuse.kmsfs` first `mount.fuse.kmsfs`.
pub const HELPER_NAMES: [&str; 2] = ["mount.kmsfs", "mount.fuse.kmsfs"];

/// Options of mount(8), fstab and systemd that concern the mount tools or
/// the boot order, not the filesystem: accepted and ignored, as other
/// mount helpers do. (FUSE mounts are always nosuid and nodev.)
const IGNORED: [&str; 25] = [
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "_netdev",
    "nofail",
    "rw",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "exec",
    "noexec",
    "async",
    "sync",
    "atime",
    "noatime",
    "relatime",
    "strictatime",
    "nodiratime",
    "default_permissions",
];

/// What the helper was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Helper {
    /// Run `kmsfs` with these arguments (without the program name).
    Run(Vec<OsString>),
    /// `-f` (fake): check the options, mount nothing.
    Fake,
}

/// Whether `argv0` names the mount helper.
pub fn is_helper(argv0: &OsStr) -> bool {
    let name = std::path::Path::new(argv0)
        .file_name()
        .unwrap_or(argv0)
        .as_bytes();
    HELPER_NAMES.iter().any(|h| name == h.as_bytes())
}

/// Translates mount(8)'s helper arguments (after the program name).
pub fn translate(args: &[OsString]) -> Result<Helper, String> {
    let mut positional = Vec::new();
    let mut options: Vec<String> = Vec::new();
    let (mut sloppy, mut fake) = (false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let b = a.as_bytes();
        if b == b"-o" {
            let o = it.next().ok_or("-o needs a value")?;
            options.push(utf8(o)?);
        } else if let Some(o) = b.strip_prefix(b"-o") {
            options.push(utf8(OsStr::from_bytes(o))?);
        } else if b == b"-t" {
            it.next().ok_or("-t needs a value")?;
        } else if b == b"-N" {
            return Err("-N (mount namespaces) is not supported".into());
        } else if b.len() > 1 && b[0] == b'-' {
            for flag in &b[1..] {
                match flag {
                    b's' => sloppy = true,
                    b'f' => fake = true,
                    // -n: no mtab to write; -v: kmsfs says what fails anyway.
                    b'n' | b'v' => {}
                    _ => return Err(format!("unknown flag -{}", char::from(*flag))),
                }
            }
        } else {
            positional.push(a.clone());
        }
    }
    let [source, target] = <[OsString; 2]>::try_from(positional)
        .map_err(|_| "usage: mount.kmsfs CIPHERDIR MOUNTPOINT [-sfnv] [-o OPTIONS]")?;
    let mut global: Vec<OsString> = Vec::new();
    let mut mount: Vec<OsString> = Vec::new();
    for opt in options.iter().flat_map(|o| o.split(',')) {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        let needs = |v: Option<&str>| -> Result<OsString, String> {
            match v {
                Some(v) if !v.is_empty() => Ok(OsString::from(v)),
                _ => Err(format!("mount option {key} needs a value ({key}=...)")),
            }
        };
        match key {
            "" => {}
            "passphrase_file" | "key_file" | "engine" | "kms" => {
                global.push(format!("--{}", key.replace('_', "-")).into());
                global.push(needs(value)?);
            }
            "reauth_secs" | "cache_max_uses" => {
                mount.push(format!("--{}", key.replace('_', "-")).into());
                mount.push(needs(value)?);
            }
            "allow_other" => mount.push("--allow-other".into()),
            "ro" => mount.push("--read-only".into()),
            k if IGNORED.contains(&k) || k.starts_with("x-") || k == "comment" => {}
            _ if sloppy => {}
            _ => {
                return Err(format!(
                    "unknown mount option {opt:?} (kmsfs takes passphrase_file=, key_file=, \
                     engine=, kms=, allow_other, ro, rw, reauth_secs=, cache_max_uses=; \
                     see docs/admin-guide.md \"Mounting at boot\")"
                ));
            }
        }
    }
    if fake {
        return Ok(Helper::Fake);
    }
    let mut out = global;
    out.push("mount".into());
    out.push(source);
    out.push(target);
    out.extend(mount);
    Ok(Helper::Run(out))
}

fn utf8(o: &OsStr) -> Result<String, String> {
    o.to_str()
        .map(str::to_string)
        .ok_or_else(|| "mount options must be UTF-8".to_string())
}

/// Runs the helper: translates the arguments and runs this same binary
/// as `kmsfs ARGS` (its background mount returns once the mount is live);
/// returns the exit code.
pub fn run(args: &[OsString]) -> i32 {
    match translate(args) {
        Ok(Helper::Fake) => crate::exit::SUCCESS,
        Ok(Helper::Run(kmsfs_args)) => {
            let exe = match std::env::current_exe() {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("mount.kmsfs: finding own executable: {e}");
                    return crate::exit::IO;
                }
            };
            match std::process::Command::new(exe).args(&kmsfs_args).status() {
                Ok(st) => st.code().unwrap_or(crate::exit::IO),
                Err(e) => {
                    eprintln!("mount.kmsfs: running kmsfs: {e}");
                    crate::exit::IO
                }
            }
        }
        Err(e) => {
            eprintln!("mount.kmsfs: {e}");
            crate::exit::USAGE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    fn run_args(s: &[&str]) -> Vec<String> {
        match translate(&args(s)).unwrap() {
            Helper::Run(v) => v.into_iter().map(|o| o.into_string().unwrap()).collect(),
            Helper::Fake => panic!("fake"),
        }
    }

    #[test]
    fn fstab_options_become_arguments() {
        assert_eq!(
            run_args(&[
                "/srv/a.enc",
                "/mnt/a",
                "-o",
                "rw,passphrase_file=/etc/kmsfs/p,allow_other,_netdev,nofail,x-systemd.automount,engine=/var/lib/kmsfs/engine",
            ]),
            [
                "--passphrase-file",
                "/etc/kmsfs/p",
                "--engine",
                "/var/lib/kmsfs/engine",
                "mount",
                "/srv/a.enc",
                "/mnt/a",
                "--allow-other"
            ]
        );
        assert_eq!(
            run_args(&[
                "-n",
                "-o",
                "ro,kms=unix:///run/kmsfs/engine.sock",
                "s",
                "t",
                "-t",
                "fuse.kmsfs",
                "-oreauth_secs=2"
            ]),
            [
                "--kms",
                "unix:///run/kmsfs/engine.sock",
                "mount",
                "s",
                "t",
                "--read-only",
                "--reauth-secs",
                "2"
            ]
        );
    }

    #[test]
    fn mistakes_are_refused_unless_sloppy() {
        let e = translate(&args(&["s", "t", "-o", "bogus=1"])).unwrap_err();
        assert!(e.contains("unknown mount option \"bogus=1\""), "{e}");
        assert!(translate(&args(&["s", "t", "-s", "-o", "bogus=1"])).is_ok());
        assert!(translate(&args(&["s", "-o", "ro"])).is_err());
        assert!(translate(&args(&["s", "t", "u"])).is_err());
        assert!(translate(&args(&["s", "t", "-o", "passphrase_file="])).is_err());
        assert!(translate(&args(&["s", "t", "-x"])).is_err());
        assert!(translate(&args(&["s", "t", "-N", "1"])).is_err());
        assert_eq!(
            translate(&args(&["s", "t", "-f", "-o", "ro"])),
            Ok(Helper::Fake)
        );
    }

    #[test]
    fn helper_names() {
        assert!(is_helper(OsStr::new("/sbin/mount.fuse.kmsfs")));
        assert!(is_helper(OsStr::new("mount.kmsfs")));
        assert!(!is_helper(OsStr::new("/usr/bin/kmsfs")));
    }
}
