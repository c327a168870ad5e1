//! What `--data` names (files, folders, globs) → the list of files in order → one opened
//! reader each (the built-in slice when nothing is given).
//!
//! Never: reads the files' contents beyond opening them.

use std::path::{Path, PathBuf};

use super::reader::FrameReader;
use super::tapefile::{is_tape, TapeFileReader};
use super::{Location, ReplayError, DATA_EXTENSIONS, DEFAULT_SLICE, DEFAULT_SLICE_NAME};
use crate::types::SymbolSpec;

/// Resolves `--data` arguments (files, folders, globs in the file-name part) into files,
/// each argument's matches sorted by name, arguments kept in order.
pub fn resolve_inputs(args: &[String]) -> Result<Vec<PathBuf>, ReplayError> {
    let mut out = Vec::new();
    for arg in args {
        let path = PathBuf::from(arg);
        let not_found = |problem: String| ReplayError {
            file: arg.clone(),
            location: Location::File,
            problem,
            fix: "give a file, a folder or a glob such as 'data/btcusdt_*.gz'".to_string(),
        };
        if path.is_dir() {
            let mut found: Vec<PathBuf> = read_dir_sorted(&path)
                .map_err(|e| not_found(format!("cannot list the folder: {e}")))?
                .into_iter()
                .filter(|p| {
                    let name = file_base_name(p);
                    !name.starts_with('.')
                        && DATA_EXTENSIONS.iter().any(|ext| name.ends_with(ext))
                        && p.is_file()
                })
                .collect();
            if found.is_empty() {
                return Err(not_found(format!(
                    "the folder holds no data files ({})",
                    DATA_EXTENSIONS.join(", ")
                )));
            }
            out.append(&mut found);
        } else if path.is_file() || is_fifo(&path) {
            out.push(path);
        } else if arg.contains(['*', '?']) {
            let pattern = file_base_name(&path);
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if parent.to_string_lossy().contains(['*', '?']) {
                return Err(not_found(
                    "wildcards are only supported in the file name, not in folders".to_string(),
                ));
            }
            let mut found: Vec<PathBuf> = read_dir_sorted(&parent)
                .map_err(|e| not_found(format!("cannot list {}: {e}", parent.display())))?
                .into_iter()
                .filter(|p| {
                    p.is_file() && glob_match(pattern.as_bytes(), file_base_name(p).as_bytes())
                })
                .collect();
            if found.is_empty() {
                return Err(not_found("no file matches".to_string()));
            }
            out.append(&mut found);
        } else {
            return Err(not_found("no such file or folder".to_string()));
        }
    }
    Ok(out)
}

/// Opens every input (the built-in slice when `args` is empty).
pub fn open_inputs(args: &[String], symbol: &str) -> Result<Vec<FrameReader>, ReplayError> {
    if args.is_empty() {
        return Ok(vec![FrameReader::from_gzip_capture(
            DEFAULT_SLICE_NAME,
            DEFAULT_SLICE,
        )]);
    }
    open_frame_files(&resolve_inputs(args)?, symbol)
}

/// Opens files of frames. Several are opened lazily (`FrameReader::open_lazy`): each is
/// opened again when the merge reaches its data, so consecutive files are open one at a
/// time.
fn open_frame_files(paths: &[PathBuf], symbol: &str) -> Result<Vec<FrameReader>, ReplayError> {
    let open = match paths.len() {
        1 => FrameReader::open,
        _ => FrameReader::open_lazy,
    };
    paths.iter().map(|path| open(path, symbol)).collect()
}

pub(super) fn file_base_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_dir_sorted(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        paths.push(entry?.path());
    }
    paths.sort();
    Ok(paths)
}

/// `*` any run of bytes, `?` one byte.
pub(super) fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_match(&pattern[1..], name) || (!name.is_empty() && glob_match(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => glob_match(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob_match(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// Opened inputs: files of frames (merged by time, decoded while read) or decoded tape
/// files (`.mmt`, read one after another). One run reads one kind.
pub enum Inputs {
    /// Journals, captures, CSV dumps.
    Frames(Vec<FrameReader>),
    /// Tape files.
    Tapes(Vec<TapeFileReader>),
}

impl From<Vec<FrameReader>> for Inputs {
    fn from(readers: Vec<FrameReader>) -> Inputs {
        Inputs::Frames(readers)
    }
}

/// Opens every input like `open_inputs`, and tape files (checked against `spec`) too.
pub fn open_sources(args: &[String], spec: &SymbolSpec) -> Result<Inputs, ReplayError> {
    if args.is_empty() {
        return open_inputs(args, spec.symbol.as_str()).map(Inputs::Frames);
    }
    let paths = resolve_inputs(args)?;
    let tapes: Vec<bool> = paths.iter().map(|p| file_is_tape(p)).collect();
    if tapes.iter().all(|&t| t) {
        return paths
            .iter()
            .map(|p| TapeFileReader::open(p, spec))
            .collect::<Result<_, _>>()
            .map(Inputs::Tapes);
    }
    if let Some(i) = tapes.iter().position(|&t| t) {
        return Err(ReplayError {
            file: paths[i].display().to_string(),
            location: Location::File,
            problem: "a decoded tape file given with files of another format".to_string(),
            fix: "give only .mmt tapes, or convert every input into one (--mode=convert)"
                .to_string(),
        });
    }
    open_frame_files(&paths, spec.symbol.as_str()).map(Inputs::Frames)
}

/// True for a named pipe (FIFO): data that can be read once, from its start, without
/// seeking (a generator writing into it, say). Never peeked at: a byte read is gone.
pub fn is_fifo(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// True when `args` name a FIFO among their files (they can be read only once).
pub fn names_a_fifo(args: &[String]) -> Result<bool, ReplayError> {
    Ok(resolve_inputs(args)?.iter().any(|p| is_fifo(p)))
}

/// True when the file starts with the tape magic (false for a FIFO, which is not read:
/// a tape is read with seeks, for its trailer).
pub(super) fn file_is_tape(path: &Path) -> bool {
    if is_fifo(path) {
        return false;
    }
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && is_tape(&head)
}
