//! Archive extraction for Swift's `bulk` middleware (`PUT ?extract-archive=tar`): the
//! regular files of a POSIX tar archive (ustar, with GNU long names and pax `path` records),
//! read from memory. Owns only the parsing; creating the containers and objects is the API's.
// TODO-compat: `tar.gz` and `tar.bz2` need a decompressor the workspace does not carry yet;
// they are answered `400 Unsupported archive format`.

use crate::model::{SwiftError, SwiftResult};

/// The largest archive accepted in one request (it is held in memory while extracted).
// TODO-compat: upstream streams the archive; a streaming reader would lift this limit.
pub const MAX_ARCHIVE_SIZE: usize = 256 * 1024 * 1024;

/// One regular file of an archive: its path and where its bytes lie in the archive.
#[derive(Debug, PartialEq)]
pub struct TarFile {
    pub path: String,
    pub start: usize,
    pub len: usize,
}

const BLOCK: usize = 512;

fn field(block: &[u8], from: usize, len: usize) -> &[u8] {
    let f = &block[from..from + len];
    let end = f.iter().position(|b| *b == 0).unwrap_or(len);
    &f[..end]
}

fn octal(block: &[u8], from: usize, len: usize) -> Option<usize> {
    let f = field(block, from, len);
    let s = std::str::from_utf8(f).ok()?.trim();
    if s.is_empty() {
        return Some(0);
    }
    usize::from_str_radix(s, 8).ok()
}

/// The `path` record of a pax extended header (`<len> path=<value>\n` records).
fn pax_path(data: &[u8]) -> Option<String> {
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space || len > rest.len() {
            return None;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(v) = record.strip_prefix(b"path=") {
            return String::from_utf8(v.to_vec()).ok();
        }
        rest = &rest[len..];
    }
    None
}

/// The regular files of a tar archive, in order; 400 `Invalid Tar File` when it is not one.
pub fn read_tar(archive: &[u8]) -> SwiftResult<Vec<TarFile>> {
    let invalid = || SwiftError::bad_request("Invalid Tar File: not a tar archive");
    let mut files = Vec::new();
    let mut pos = 0;
    let mut long_name: Option<String> = None;
    while pos + BLOCK <= archive.len() {
        let header = &archive[pos..pos + BLOCK];
        if header.iter().all(|b| *b == 0) {
            break; // end of archive
        }
        let stored: usize = octal(header, 148, 8).ok_or_else(invalid)?;
        let sum: usize = header
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    *b as usize
                }
            })
            .sum();
        if sum != stored {
            return Err(invalid());
        }
        let size = octal(header, 124, 12).ok_or_else(invalid)?;
        let start = pos + BLOCK;
        let end = start.checked_add(size).ok_or_else(invalid)?;
        if end > archive.len() {
            return Err(invalid());
        }
        let data = &archive[start..end];
        match header[156] {
            b'L' => long_name = Some(String::from_utf8_lossy(field(data, 0, size)).into_owned()),
            b'x' => long_name = pax_path(data).or(long_name),
            b'0' | 0 => {
                let path = match long_name.take() {
                    Some(p) => p,
                    None => {
                        let name = String::from_utf8(field(header, 0, 100).to_vec())
                            .map_err(|_| invalid())?;
                        // POSIX ustar keeps a name prefix at 345; old GNU headers
                        // ("ustar  \0") keep other fields there.
                        let prefix = if &header[257..263] == b"ustar\0" {
                            String::from_utf8(field(header, 345, 155).to_vec())
                                .map_err(|_| invalid())?
                        } else {
                            String::new()
                        };
                        if prefix.is_empty() {
                            name
                        } else {
                            format!("{prefix}/{name}")
                        }
                    }
                };
                files.push(TarFile {
                    path,
                    start,
                    len: size,
                });
            }
            // Directories, links, devices: nothing to store (Swift extracts files only).
            _ => long_name = None,
        }
        pos = start + size.div_ceil(BLOCK) * BLOCK;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar header for `name` of `size` bytes and type `kind`.
    fn header(name: &str, size: usize, kind: u8) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: usize = h.iter().map(|b| *b as usize).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn pad(mut data: Vec<u8>) -> Vec<u8> {
        data.resize(data.len().div_ceil(BLOCK) * BLOCK, 0);
        data
    }

    #[test]
    fn regular_files_are_listed_with_their_bytes() {
        let mut tar = header("c/", 0, b'5');
        tar.extend(header("c/a.txt", 5, b'0'));
        tar.extend(pad(b"hello".to_vec()));
        let long = format!("c/{}", "x".repeat(150));
        let pax = format!("{} path={long}\n", long.len() + 10);
        assert_eq!(pax.len(), long.len() + 10);
        tar.extend(header("PaxHeader", pax.len(), b'x'));
        tar.extend(pad(pax.into_bytes()));
        tar.extend(header("ignored", 3, b'0'));
        tar.extend(pad(b"abc".to_vec()));
        tar.extend(vec![0u8; 2 * BLOCK]);
        let files = read_tar(&tar).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, "c/a.txt");
        assert_eq!(
            &tar[files[0].start..files[0].start + files[0].len],
            b"hello"
        );
        assert_eq!(files[1].path, long);
        assert_eq!(&tar[files[1].start..files[1].start + files[1].len], b"abc");
    }

    #[test]
    fn bad_archives_are_refused() {
        assert_eq!(read_tar(b"not a tar at all").unwrap(), vec![]);
        let mut junk = vec![7u8; BLOCK * 2];
        assert_eq!(read_tar(&junk).unwrap_err().status, 400);
        // A file longer than the archive.
        junk = header("c/o", 4096, b'0');
        assert_eq!(read_tar(&junk).unwrap_err().status, 400);
    }
}
