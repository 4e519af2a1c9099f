//! The embedded default's transport: each message as an RFC 5322 `.eml` file under
//! `data_dir/outbox/`, readable by its owner only (reset links are in there).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

/// Creates the directory (mode 0700) if it is missing.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `message` as `dir/<name>.eml`, mode 0600. The file appears whole or not at
/// all (written aside, then renamed), so a reader never sees half a message.
/// Blocking: call from `spawn_blocking`.
pub fn write(dir: &Path, name: &str, message: &[u8]) -> std::io::Result<PathBuf> {
    ensure_dir(dir)?;
    let final_path = dir.join(format!("{name}.eml"));
    let temp_path = dir.join(format!(".{name}.eml.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp_path)?;
    file.write_all(message)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp_path, &final_path)?;
    Ok(final_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_land_whole_and_private() {
        let dir = tempfile::TempDir::new().unwrap();
        let outbox = dir.path().join("outbox");
        let path = write(
            &outbox,
            "20261124T101500Z-abc",
            b"Subject: hi\r\n\r\nbody\r\n",
        )
        .unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"Subject: hi\r\n\r\nbody\r\n"
        );
        let names: Vec<_> = std::fs::read_dir(&outbox)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["20261124T101500Z-abc.eml"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(&outbox).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }
}
