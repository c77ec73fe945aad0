//! Pure on-disk encodings of the volume: the volume config (`kmsfs.conf`) and
//! the fixed-size per-file header. No I/O here; callers read and write bytes.
//!
//! The byte layouts are specified in `docs/file-format.md` and pinned by
//! known-answer tests.

pub mod config;
pub mod features;
pub mod header;

pub use config::{
    CONFIG_FILE_NAME, CONFIG_FORMAT_VERSION, CONTEXT_CONFIG, CONTEXT_PATH, CONTEXT_PURPOSE,
    CONTEXT_VOLUME, ConfigError, DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, NamesMode,
    OLDEST_CONFIG_FORMAT_VERSION, PURPOSE_NAMES, VolumeConfig, names_key_context,
    validate_block_size,
};
pub use features::{FLAG_LONG_NAMES, Features};
pub use header::{
    FILE_ID_LEN, FileHeader, FileId, HEADER_FORMAT_V1, HEADER_FORMAT_VERSION, HEADER_LEN,
    HEADER_MAGIC, HeaderError, MAX_WRAPPED_DEK_LEN, VERSION_OFFSET,
};
