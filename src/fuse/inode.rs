//! The inode table: FUSE inode numbers <-> plaintext path (from the mount
//! root) and backing path, with kernel lookup counts and per-inode state.
//!
//! Paths are kept as bytes (names from the kernel need not be UTF-8). The
//! plaintext path is what the encryption context binds a file's key to; the
//! backing path is where its ciphertext lives. A rename rewrites both for the
//! node and every node beneath it.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU16;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::SystemTime;

/// The root's inode number.
pub const ROOT_INO: u64 = 1;

/// State shared by every open handle of one inode.
#[derive(Debug, Default)]
pub struct InodeState {
    /// Readers of content take it shared; writers (read-modify-write of
    /// partial blocks, truncate) take it exclusive.
    pub io: RwLock<()>,
    /// (mtime, backing size) when the kernel last had this file's pages;
    /// an open that sees the same values keeps the page cache.
    pub cache_stamp: Mutex<Option<(SystemTime, u64)>>,
    /// The directory's name IV, once read (directories only).
    pub dir_iv: Mutex<Option<[u8; 16]>>,
    /// The regular file's id from its header, once read (regular files
    /// only; the id never changes, rename keeps it).
    pub file_id: Mutex<Option<[u8; 16]>>,
    /// The regular file's content format version (1 or 2) from its
    /// header, set at every open under `io`; 0 until then. Shared, so that
    /// every handle follows a conversion to format 2.
    pub content_version: AtomicU16,
    /// The file type seen when the kernel looked it up (a node's type
    /// never changes: another type at its path is another node), so that
    /// unlink knows without a system call that a regular file has no
    /// long-link target file.
    pub kind: OnceLock<fuser::FileType>,
    /// The handle opened last on this inode while it is open (0: none, or
    /// released), so that a setattr of an open file (`tar -x`'s
    /// `futimens`, `fchown`, `fchmod`) works on its descriptor instead of
    /// walking the backing path.
    pub last_fh: std::sync::atomic::AtomicU64,
    /// The regular file's last block as this mount last wrote it.
    pub tail: super::blockio::TailCache,
}

/// A plaintext path: `/` for the root, `/a/b` below it. Bytes, not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlainPath(Vec<u8>);

impl PlainPath {
    pub fn root() -> Self {
        PlainPath(b"/".to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_os_str(&self) -> &OsStr {
        OsStr::from_bytes(&self.0)
    }

    pub fn is_root(&self) -> bool {
        self.0 == b"/"
    }

    /// The path of `name` inside this directory.
    pub fn child(&self, name: &OsStr) -> Self {
        let mut p = self.0.clone();
        if !self.is_root() {
            p.push(b'/');
        }
        p.extend_from_slice(name.as_bytes());
        PlainPath(p)
    }

    /// True when `self` is `other` or lies beneath it.
    pub fn is_within(&self, other: &PlainPath) -> bool {
        if other.is_root() || self == other {
            return true;
        }
        self.0.starts_with(&other.0) && self.0.get(other.0.len()) == Some(&b'/')
    }

    /// `self` with the prefix `from` replaced by `to` (`self` must be within `from`).
    fn rebase(&self, from: &PlainPath, to: &PlainPath) -> PlainPath {
        let rest = &self.0[from.0.len()..];
        let mut p = to.0.clone();
        if to.is_root() && rest.first() == Some(&b'/') {
            p.clear();
        }
        p.extend_from_slice(rest);
        PlainPath(p)
    }

    /// The string bound into encryption contexts: the path with every byte
    /// that is not part of valid UTF-8 written as NUL and two lowercase hex
    /// digits (`/caf\xe9` -> `"/caf\u{0}e9"`).
    ///
    /// A UTF-8 path is unchanged, and every valid UTF-8 prefix of any path
    /// is kept, so path conditions (`StringLike "/shared/*"`, a Deny on a
    /// prefix) see non-UTF-8 names below a directory too. A path never
    /// contains NUL, so the escape cannot be confused with path text and
    /// the mapping is injective.
    pub fn context_string(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(self.0.len());
        for chunk in self.0.utf8_chunks() {
            out.push_str(chunk.valid());
            for b in chunk.invalid() {
                let _ = write!(out, "\0{b:02x}");
            }
        }
        out
    }

    /// The context string data keys of non-UTF-8 paths were bound to before
    /// [`PlainPath::context_string`] escaped bytes: `base64url:` and the
    /// unpadded base64url of the whole path. `None` for a UTF-8 path (its
    /// string never changed).
    pub fn legacy_context_string(&self) -> Option<String> {
        use base64::Engine;
        std::str::from_utf8(&self.0).err().map(|_| {
            format!(
                "base64url:{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.0)
            )
        })
    }

    /// For log lines: lossy UTF-8.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    pub fn from_bytes(b: Vec<u8>) -> Self {
        PlainPath(b)
    }

    pub fn into_os_string(self) -> OsString {
        OsString::from_vec(self.0)
    }
}

/// One inode's entry.
#[derive(Debug, Clone)]
pub struct Node {
    pub plain: PlainPath,
    pub backing: PathBuf,
    pub state: Arc<InodeState>,
    lookups: u64,
    /// The backing file's inode number (keeps our number stable).
    backing_ino: u64,
    /// False once unlinked or replaced; the node lives on while the kernel
    /// holds references (open handles keep their own file descriptors).
    linked: bool,
    /// The attributes it had when it was removed, when known (a replaced
    /// rename target, a removed directory): what `fstat` on a descriptor
    /// still open on it reports, with a link count of 0.
    orphan_attr: Option<fuser::FileAttr>,
}

/// What a caller gets back from the table: a snapshot of the paths.
#[derive(Debug, Clone)]
pub struct NodeRef {
    pub ino: u64,
    pub plain: PlainPath,
    pub backing: PathBuf,
    pub state: Arc<InodeState>,
    /// False once removed: `plain` and `backing` then name whatever took
    /// its place (or nothing) and must not be used to reach it.
    pub linked: bool,
    /// See `Node::orphan_attr` (private).
    pub orphan_attr: Option<fuser::FileAttr>,
}

/// The table. Callers wrap it in a mutex.
#[derive(Debug)]
pub struct InodeTable {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<PlainPath, u64>,
    /// Backing inode -> our inode number, kept after a forget so that a
    /// file keeps its number for the whole mount (tar and others compare
    /// st_ino); dropped when the file is unlinked through the mount.
    by_backing: HashMap<u64, u64>,
    next: u64,
}

impl InodeTable {
    pub fn new(backing_root: &Path) -> Self {
        let mut t = InodeTable {
            nodes: HashMap::new(),
            by_path: HashMap::new(),
            by_backing: HashMap::new(),
            next: ROOT_INO + 1,
        };
        t.nodes.insert(
            ROOT_INO,
            Node {
                plain: PlainPath::root(),
                backing: backing_root.to_path_buf(),
                state: Arc::default(),
                lookups: 1,
                backing_ino: 0,
                linked: true,
                orphan_attr: None,
            },
        );
        t.by_path.insert(PlainPath::root(), ROOT_INO);
        t
    }

    pub fn get(&self, ino: u64) -> Option<NodeRef> {
        self.nodes.get(&ino).map(|n| NodeRef {
            ino,
            plain: n.plain.clone(),
            backing: n.backing.clone(),
            state: n.state.clone(),
            linked: n.linked,
            orphan_attr: n.orphan_attr,
        })
    }

    /// Our inode number for a backing inode, if one was handed out.
    pub fn ino_of_backing(&self, backing_ino: u64) -> Option<u64> {
        self.by_backing.get(&backing_ino).copied()
    }

    /// The state of the inode at a plaintext path, if the kernel knows it.
    pub fn state_of(&self, plain: &PlainPath) -> Option<Arc<InodeState>> {
        let ino = self.by_path.get(plain)?;
        self.nodes.get(ino).map(|n| n.state.clone())
    }

    /// The inode for a plaintext path, if the kernel knows it.
    pub fn ino_of(&self, plain: &PlainPath) -> Option<u64> {
        self.by_path.get(plain).copied()
    }

    /// Records one kernel lookup of `plain` (creating the node when new) and
    /// returns its inode number.
    pub fn lookup(&mut self, plain: PlainPath, backing: PathBuf, backing_ino: u64) -> NodeRef {
        if let Some(&ino) = self.by_path.get(&plain)
            && let Some(n) = self.nodes.get_mut(&ino)
        {
            n.lookups += 1;
            n.backing = backing;
            return NodeRef {
                ino,
                plain,
                backing: n.backing.clone(),
                state: n.state.clone(),
                linked: true,
                orphan_attr: None,
            };
        }
        let ino = match self.by_backing.get(&backing_ino) {
            Some(&i) if backing_ino != 0 && !self.nodes.contains_key(&i) => i,
            _ => {
                self.next += 1;
                self.next - 1
            }
        };
        if backing_ino != 0 {
            self.by_backing.insert(backing_ino, ino);
        }
        let state: Arc<InodeState> = Arc::default();
        self.nodes.insert(
            ino,
            Node {
                plain: plain.clone(),
                backing: backing.clone(),
                state: state.clone(),
                lookups: 1,
                backing_ino,
                linked: true,
                orphan_attr: None,
            },
        );
        self.by_path.insert(plain.clone(), ino);
        NodeRef {
            ino,
            plain,
            backing,
            state,
            linked: true,
            orphan_attr: None,
        }
    }

    /// The kernel dropped `n` references.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let gone = match self.nodes.get_mut(&ino) {
            Some(node) => {
                node.lookups = node.lookups.saturating_sub(n);
                node.lookups == 0
            }
            None => false,
        };
        if gone
            && let Some(node) = self.nodes.remove(&ino)
            && node.linked
            && self.by_path.get(&node.plain) == Some(&ino)
        {
            self.by_path.remove(&node.plain);
        }
    }

    /// `plain` was removed from its directory; `attr`: its attributes just
    /// before, when known (see `Node::orphan_attr`).
    pub fn unlinked(&mut self, plain: &PlainPath, attr: Option<fuser::FileAttr>) {
        if let Some(ino) = self.by_path.remove(plain)
            && let Some(n) = self.nodes.get_mut(&ino)
        {
            n.linked = false;
            n.orphan_attr = attr.map(|a| fuser::FileAttr { nlink: 0, ..a });
            if self.by_backing.get(&n.backing_ino) == Some(&ino) {
                self.by_backing.remove(&n.backing_ino);
            }
        }
    }

    /// `from` (and everything beneath it) now lives at `to`, whose backing
    /// path is `to_backing`. A node previously at `to` is unlinked
    /// (`replaced`: its attributes before).
    pub fn renamed(
        &mut self,
        from: &PlainPath,
        to: &PlainPath,
        to_backing: &Path,
        replaced: Option<fuser::FileAttr>,
    ) {
        let from_backing = match self.ino_of(from).and_then(|i| self.nodes.get(&i)) {
            Some(n) => n.backing.clone(),
            None => {
                // Not known to the kernel: only the destination changes.
                self.unlinked(to, replaced);
                self.rebase_all(from, to, None, to_backing);
                return;
            }
        };
        self.unlinked(to, replaced);
        self.rebase_all(from, to, Some(&from_backing), to_backing);
    }

    fn rebase_all(
        &mut self,
        from: &PlainPath,
        to: &PlainPath,
        from_backing: Option<&Path>,
        to_backing: &Path,
    ) {
        let moved: Vec<(u64, PlainPath)> = self
            .by_path
            .iter()
            .filter(|(p, _)| p.is_within(from))
            .map(|(p, i)| (*i, p.clone()))
            .collect();
        for (_, p) in &moved {
            self.by_path.remove(p);
        }
        for (ino, p) in moved {
            let Some(n) = self.nodes.get_mut(&ino) else {
                continue;
            };
            n.plain = p.rebase(from, to);
            if let Some(fb) = from_backing
                && let Ok(rest) = n.backing.strip_prefix(fb)
            {
                n.backing = if rest.as_os_str().is_empty() {
                    to_backing.to_path_buf()
                } else {
                    to_backing.join(rest)
                };
            }
            self.by_path.insert(n.plain.clone(), ino);
        }
    }

    /// `a` and `b` swapped places (RENAME_EXCHANGE).
    pub fn exchanged(&mut self, a: &PlainPath, a_backing: &Path, b: &PlainPath, b_backing: &Path) {
        // Move a's subtree to a temporary name, b's to a, then a's to b.
        let tmp = PlainPath(b"\0kmsfs-exchange".to_vec());
        let tmp_backing = PathBuf::from("/\0kmsfs-exchange");
        self.rebase_all(a, &tmp, Some(a_backing), &tmp_backing);
        self.rebase_all(b, a, Some(b_backing), a_backing);
        self.rebase_all(&tmp, b, Some(&tmp_backing), b_backing);
    }

    /// Number of known inodes (for status).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PlainPath {
        PlainPath(s.as_bytes().to_vec())
    }

    #[test]
    fn child_and_within() {
        assert_eq!(PlainPath::root().child(OsStr::new("a")), p("/a"));
        assert_eq!(p("/a").child(OsStr::new("b")), p("/a/b"));
        assert!(p("/a/b").is_within(&p("/a")));
        assert!(!p("/ab").is_within(&p("/a")));
        assert!(p("/x").is_within(&PlainPath::root()));
    }

    #[test]
    fn context_string_escapes_only_invalid_bytes() {
        let raw = |b: &[u8]| PlainPath(b.to_vec());
        assert_eq!(p("/a").context_string(), "/a");
        assert_eq!(p("/caf\u{e9}/%00").context_string(), "/caf\u{e9}/%00");
        assert_eq!(raw(b"/\xff").context_string(), "/\0ff");
        // Valid UTF-8 around and between invalid bytes is kept.
        assert_eq!(
            raw(b"/shared/caf\xe9/\xc3\xa9\xe2\x82").context_string(),
            "/shared/caf\0e9/\u{e9}\0e2\082"
        );
        assert!(
            raw(b"/shared/\x80x")
                .context_string()
                .starts_with("/shared/")
        );
        assert_eq!(p("/a").legacy_context_string(), None);
        assert_eq!(
            raw(b"/\xff").legacy_context_string().as_deref(),
            Some("base64url:L_8")
        );
    }

    proptest::proptest! {
        #[test]
        fn context_string_is_injective(
            a in proptest::collection::vec(1u8..=255, 0..12),
            b in proptest::collection::vec(1u8..=255, 0..12),
        ) {
            // Kernel names never contain NUL.
            let (pa, pb) = (PlainPath(a.clone()), PlainPath(b.clone()));
            proptest::prop_assert_eq!(pa.context_string() == pb.context_string(), a == b);
        }
    }

    #[test]
    fn lookup_forget_and_rename_subtree() {
        let mut t = InodeTable::new(Path::new("/c"));
        let a = t.lookup(p("/a"), PathBuf::from("/c/A"), 10);
        let b = t.lookup(p("/a/b"), PathBuf::from("/c/A/B"), 11);
        assert_eq!(t.lookup(p("/a"), PathBuf::from("/c/A"), 10).ino, a.ino);
        t.renamed(&p("/a"), &p("/z"), Path::new("/c/Z"), None);
        let b2 = t.get(b.ino).unwrap();
        assert_eq!(b2.plain, p("/z/b"));
        assert_eq!(b2.backing, PathBuf::from("/c/Z/B"));
        assert_eq!(t.ino_of(&p("/z")), Some(a.ino));
        assert_eq!(t.ino_of(&p("/a")), None);
        t.forget(a.ino, 1);
        assert!(t.get(a.ino).is_some());
        t.forget(a.ino, 1);
        assert!(t.get(a.ino).is_none());
        assert_eq!(t.ino_of(&p("/z")), None);
    }

    #[test]
    fn rename_over_unlinks_destination_and_exchange_swaps() {
        let mut t = InodeTable::new(Path::new("/c"));
        let x = t.lookup(p("/x"), PathBuf::from("/c/X"), 12);
        let y = t.lookup(p("/y"), PathBuf::from("/c/Y"), 13);
        t.exchanged(&p("/x"), Path::new("/c/X"), &p("/y"), Path::new("/c/Y"));
        assert_eq!(t.get(x.ino).unwrap().plain, p("/y"));
        assert_eq!(t.get(x.ino).unwrap().backing, PathBuf::from("/c/Y"));
        assert_eq!(t.get(y.ino).unwrap().plain, p("/x"));
        t.renamed(&p("/x"), &p("/y"), Path::new("/c/Y"), None);
        assert_eq!(t.ino_of(&p("/y")), Some(y.ino));
        // x's node is unlinked but alive until forgotten.
        assert!(t.get(x.ino).is_some());
        t.forget(x.ino, 1);
        assert_eq!(t.ino_of(&p("/y")), Some(y.ino));
    }

    #[test]
    fn numbers_are_stable_across_forget_until_unlinked() {
        let mut t = InodeTable::new(Path::new("/c"));
        let a = t.lookup(p("/a"), PathBuf::from("/c/A"), 77);
        t.forget(a.ino, 1);
        assert_eq!(t.lookup(p("/a"), PathBuf::from("/c/A"), 77).ino, a.ino);
        t.unlinked(&p("/a"), None);
        assert_ne!(t.lookup(p("/a"), PathBuf::from("/c/A"), 77).ino, a.ino);
    }
}
