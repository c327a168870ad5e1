//! `config/calibrated.toml`: the configuration layer calibration writes (defaults ←
//! calibrated.toml ← --config ← environment ← flags), and the atomic file write it (and the
//! shard files) go through.
//!
//! Owns: the file's text — a header of `#` comments (which data, when, the fitted values,
//! the chosen point, in-sample and out-of-sample KPIs) and only keys the config schema
//! knows (`model.sigma_bps_per_sqrt_s`, `model.k_per_bps` and the chosen grid point's
//! keys) — and `write_atomically`: temp file in the same folder, fsync, the previous file
//! kept as `<name>.bak`, rename over the target, fsync of the folder. A reader sees the
//! old file or the new one, never half of one.
//!
//! Never: writes a key the config loader would refuse (the mode loads the text through
//! the loader before it writes it), or leaves the temp file behind on an error.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The text of calibrated.toml: `header` lines as comments, then `settings`
/// (`section.key=value`, later ones override earlier ones) grouped by section in order of
/// first appearance. Values are read as TOML values when they are one, else as strings —
/// exactly as `--set` reads them.
pub fn render(header: &[String], settings: &[String]) -> anyhow::Result<String> {
    let mut sections: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, Vec<(String, toml::Value)>> = BTreeMap::new();
    for setting in settings {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("setting {setting:?} is not key=value"))?;
        let (section, name) = key
            .trim()
            .split_once('.')
            .ok_or_else(|| anyhow::anyhow!("setting {setting:?}: the key must be section.key"))?;
        let value = value.trim();
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        if !sections.iter().any(|s| s == section) {
            sections.push(section.to_string());
        }
        let entries = values.entry(section.to_string()).or_default();
        match entries.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = parsed,
            None => entries.push((name.to_string(), parsed)),
        }
    }
    let mut text = String::new();
    for line in header {
        for part in line.lines() {
            text.push_str(if part.is_empty() { "#" } else { "# " });
            text.push_str(part);
            text.push('\n');
        }
    }
    for section in &sections {
        text.push('\n');
        text.push_str(&format!("[{section}]\n"));
        for (name, value) in values.get(section).map(Vec::as_slice).unwrap_or(&[]) {
            text.push_str(&format!("{name} = {value}\n"));
        }
    }
    toml::from_str::<toml::Table>(&text)
        .map_err(|e| anyhow::anyhow!("calibrated.toml would not be valid TOML: {e}"))?;
    Ok(text)
}

/// Writes `bytes` to `path` atomically: a temp file beside it, fsynced, renamed over
/// `path`, then the folder fsynced. With `keep_backup`, an existing `path` is kept as
/// `<path>.bak` first (replacing an older .bak). Creates the folder if needed.
pub fn write_atomically(path: &Path, bytes: &[u8], keep_backup: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "calibrated.toml".to_string());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        if keep_backup && path.is_file() {
            let bak = backup_path(path);
            if bak.exists() {
                fs::remove_file(&bak)?;
            }
            // A hard link keeps `path` in place until the rename replaces it; a copy where
            // the file system has no links.
            if fs::hard_link(path, &bak).is_err() {
                fs::copy(path, &bak)?;
            }
        }
        fs::rename(&tmp, path)?;
        // Make the rename durable; some platforms cannot open a folder: best effort.
        if let Ok(folder) = File::open(&dir) {
            let _ = folder.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `<path>.bak`.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".bak");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_group_by_section_and_later_ones_win() {
        let text = render(
            &["Written by a test.".to_string(), "two\nlines".to_string()],
            &[
                "model.sigma_bps_per_sqrt_s=1.17".to_string(),
                "model.k_per_bps=0.9".to_string(),
                "ofi.beta=0".to_string(),
                "model.k_per_bps=1.5".to_string(),
                "market.symbol=BTCUSDT".to_string(),
            ],
        )
        .unwrap();
        assert_eq!(
            text,
            "# Written by a test.\n# two\n# lines\n\n[model]\nsigma_bps_per_sqrt_s = 1.17\n\
             k_per_bps = 1.5\n\n[ofi]\nbeta = 0\n\n[market]\nsymbol = \"BTCUSDT\"\n"
        );
        assert!(render(&[], &["nokey".to_string()]).is_err());
    }

    #[test]
    fn an_existing_file_is_kept_as_bak() {
        let dir = std::env::temp_dir().join(format!("mm-calib-atomic-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("config").join("calibrated.toml");
        write_atomically(&path, b"one", true).unwrap();
        assert!(!backup_path(&path).exists());
        write_atomically(&path, b"two", true).unwrap();
        write_atomically(&path, b"three", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"three");
        assert_eq!(fs::read(backup_path(&path)).unwrap(), b"two");
        let leftovers = fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 2, "no temp file left behind");
        let _ = fs::remove_dir_all(&dir);
    }
}
