//! File writing that never leaves a half-written file: write a temporary file beside the
//! target, flush it to disk, then rename it over the target.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Result};

/// The temporary path used while writing `path` (same folder, so the rename is atomic).
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = temp_path(path);
    {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Whether `name` is a temporary file name of an atomic write (`<name>.tmp<pid>`, or the
/// model zoo's `.<name>.tmp<pid>`) by a process other than this one.
fn is_stale_temp(name: &str) -> bool {
    let Some((stem, pid)) = name.rsplit_once(".tmp") else {
        return false;
    };
    !stem.is_empty()
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && pid != std::process::id().to_string()
}

/// Removes the temporary files that writers killed before their rename left in `dir` and
/// its sub-folders one level down (the overlays): regular files named as
/// [`temp_path`] names them, written by another process. Returns how many were removed;
/// a folder that does not exist has none.
pub fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let mut folders = vec![(dir.to_path_buf(), true)];
    while let Some((folder, descend)) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&folder)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&folder))?;
            // The entry's own type: a symlink is neither followed nor removed.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() && descend {
                folders.push((path, false));
            } else if kind.is_file() && entry.file_name().to_str().is_some_and(is_stale_temp) {
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Appends one line to a file (the JSON-lines log), creating it if needed.
pub fn append_line(path: &Path, line: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))?;
    writeln!(f, "{line}").map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("lssl-io-{}", std::process::id()));
        let p = dir.join("a/b.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!temp_path(&p).exists());
        append_line(&dir.join("log.jsonl"), "{}").unwrap();
        append_line(&dir.join("log.jsonl"), "{}").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("log.jsonl")).unwrap(),
            "{}\n{}\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_temps_of_other_processes_are_removed() {
        let dir = std::env::temp_dir().join(format!("lssl-io-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("overlays")).unwrap();
        let stale = [
            "state.json.tmp123",
            ".epoch-0001.safetensors.tmp9",
            "overlays/test-000.png.tmp77",
        ];
        let kept = ["state.json", "notes.tmp", "a.tmp12x", ".tmp5", "log.jsonl"];
        for f in stale.iter().chain(&kept) {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        // This process's own temporary file may be in the middle of a write.
        let own = temp_path(&dir.join("best.safetensors"));
        std::fs::write(&own, b"x").unwrap();
        assert_eq!(remove_stale_temps(&dir).unwrap(), stale.len());
        for f in stale {
            assert!(!dir.join(f).exists(), "{f} is left");
        }
        for f in kept {
            assert!(dir.join(f).exists(), "{f} was removed");
        }
        assert!(own.exists());
        assert_eq!(remove_stale_temps(&dir.join("missing")).unwrap(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
