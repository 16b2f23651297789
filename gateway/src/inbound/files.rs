//! The store of inbound dossiers' files: on disk under `inbound.files_dir`, never in Redis
//! (a dossier's scans are megabytes; the queue holds only their descriptions). Each file is
//! `<id>.bin` beside `<id>.json` (its description), written to a temporary name, synced and
//! renamed, so a file that is listed is whole. Several instances share the store by mounting
//! one directory.

use std::path::{Path, PathBuf};

use hcc_adapters::inbound::FileType;
use serde::{Deserialize, Serialize};

/// A stored file's description, as the record and the webhook list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// 32 lowercase hex characters, random.
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("the file store cannot be written: {0}")]
    Io(#[from] std::io::Error),
    #[error("the random generator failed")]
    Random,
}

#[derive(Clone)]
pub struct FileStore {
    dir: PathBuf,
}

/// Whether `id` is one this store could have made: exactly 32 lowercase hex characters (so no
/// id reaches the file system as a path of its choosing).
pub fn is_file_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FileStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore { dir: dir.into() }
    }

    fn path(&self, id: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{id}.{ext}"))
    }

    /// Stores one checked file and returns its description.
    pub async fn put(&self, bytes: Vec<u8>, name: String, label: Option<String>, kind: FileType) -> Result<StoredFile, FileError> {
        let mut random = [0u8; 16];
        hcc_signing::random_bytes(&mut random).map_err(|_| FileError::Random)?;
        let file = StoredFile {
            id: hex::encode(random),
            name,
            label,
            content_type: kind.media_type().to_string(),
            size: bytes.len() as u64,
            sha256: hcc_signing::sha256_hex(&bytes),
        };
        let (bin, meta) = (self.path(&file.id, "bin"), self.path(&file.id, "json"));
        let dir = self.dir.clone();
        let description = serde_json::to_vec(&file).map_err(|e| FileError::Io(std::io::Error::other(e)))?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            write_synced(&bin, &bytes)?;
            write_synced(&meta, &description)?;
            // The renames are durable once the directory is.
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(|e| FileError::Io(std::io::Error::other(e)))??;
        Ok(file)
    }

    /// A file and its description; `None` for an id this store does not hold.
    pub async fn get(&self, id: &str) -> Result<Option<(StoredFile, Vec<u8>)>, FileError> {
        if !is_file_id(id) {
            return Ok(None);
        }
        let (bin, meta) = (self.path(id, "bin"), self.path(id, "json"));
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
            match (std::fs::read(&meta), std::fs::read(&bin)) {
                (Ok(m), Ok(b)) => Ok(Some((m, b))),
                (Err(e), _) | (_, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        })
        .await
        .map_err(|e| FileError::Io(std::io::Error::other(e)))??;
        let Some((meta, bytes)) = read else {
            return Ok(None);
        };
        let file: StoredFile = serde_json::from_slice(&meta).map_err(|e| FileError::Io(std::io::Error::other(e)))?;
        Ok(Some((file, bytes)))
    }

    /// Removes files stored for a dossier that was not recorded after all (a duplicate that
    /// won a race, storage down). Best effort: an orphan costs disk, never correctness.
    pub async fn remove(&self, files: &[StoredFile]) {
        let paths: Vec<PathBuf> = files
            .iter()
            .flat_map(|f| [self.path(&f.id, "bin"), self.path(&f.id, "json")])
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for p in paths {
                let _ = std::fs::remove_file(p);
            }
        })
        .await;
    }
}

/// Writes `bytes` to `path` through a temporary name, synced before the rename.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_the_store_makes_are_looked_up() {
        assert!(is_file_id("0123456789abcdef0123456789abcdef"));
        for bad in [
            "",
            "../../etc/passwd",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcde",
        ] {
            assert!(!is_file_id(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_file_comes_back_byte_identical_with_its_description_and_can_be_removed() {
        let dir = std::env::temp_dir().join(format!("hcc-files-{}", uuid::Uuid::new_v4()));
        let store = FileStore::new(&dir);
        let bytes = b"%PDF-1.7\nhello".to_vec();
        let f = store.put(bytes.clone(), "a.pdf".into(), None, FileType::Pdf).await.expect("stored");
        assert!(is_file_id(&f.id));
        assert_eq!(f.sha256, hcc_signing::sha256_hex(&bytes));
        let (desc, back) = store.get(&f.id).await.expect("read").expect("there");
        assert_eq!((desc, back), (f.clone(), bytes));
        store.remove(std::slice::from_ref(&f)).await;
        assert!(store.get(&f.id).await.expect("read").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
