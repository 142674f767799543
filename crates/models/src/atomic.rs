//! Writing a file so that a crash or a kill never leaves it half-written: the bytes go to a
//! temporary file in the same folder (`.<name>.tmp<pid>`), which is flushed to disk and
//! renamed over the target; the folder is then flushed too (where the platform can), so
//! the rename itself survives a power loss. On any error the temporary file is removed and
//! the target is untouched.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The temporary path used while writing `path`: `.<name>.tmp<pid>` beside it.
pub(crate) fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: "the path has no file name".into(),
    })?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".tmp{}", std::process::id()));
    Ok(path.with_file_name(tmp))
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the folder).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path)?;
    let written = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io_err(path))
    })();
    if let Err(e) = written {
        // Nothing useful can be done if this fails too; the write's error is the one to report.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_folder(path)
}

/// Flushes the folder holding `path`, so that a rename into it is on disk.
#[cfg(unix)]
fn sync_folder(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let f = std::fs::File::open(dir).map_err(io_err(dir))?;
    match f.sync_all() {
        Ok(()) => Ok(()),
        // Some file systems cannot flush a folder; the file itself is on disk already.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Ok(()),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Windows cannot open a folder as a file to flush it; the rename is flushed with the file
/// system's journal.
#[cfg(not(unix))]
fn sync_folder(_path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_target_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(names(dir.path()), ["a.bin"]);
        assert_eq!(
            temp_path(&p)
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy(),
            format!(".a.bin.tmp{}", std::process::id())
        );
    }

    #[test]
    fn a_failed_write_removes_its_temporary_file_and_keeps_the_target() {
        let dir = tempfile::tempdir().unwrap();
        // The rename fails: the target is a folder that is not empty.
        let target = dir.path().join("t");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), b"x").unwrap();
        let e = write_atomic(&target, b"data").unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        assert_eq!(names(dir.path()), ["t"]);
        assert_eq!(std::fs::read(target.join("keep")).unwrap(), b"x");
        // The temporary file cannot be created: the folder does not exist.
        let e = write_atomic(&dir.path().join("missing/x.bin"), b"data").unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        assert_eq!(names(dir.path()), ["t"]);
        // No file name at all.
        assert!(write_atomic(Path::new("/"), b"data").is_err());
    }
}
