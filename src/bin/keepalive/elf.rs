//! Can an LD_PRELOAD library reach PROGRAM at all? Only a dynamically linked
//! program that makes its sockets through libc: a static executable never
//! runs ld.so, and Go makes its sockets with raw system calls (even with
//! cgo). We read just the ELF headers, not the whole (often large) file.

/// What an executable is, as far as preloading goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Not ELF (a script, say): its interpreter is what matters; no opinion.
    NotElf,
    Dynamic,
    /// No PT_INTERP: ld.so never runs, so LD_PRELOAD is never read.
    Static,
    /// A `.note.go.buildid` or `.go.buildinfo` section, or Go's build info.
    Go,
}

const PT_INTERP: u32 = 3;
const GO_SECTIONS: [&[u8]; 2] = [b".note.go.buildid", b".go.buildinfo"];
/// The start of Go's build information (debug/buildinfo), found by scanning
/// when a binary has no section headers left.
const GO_BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// The ELF header fields we need, whatever the class and byte order.
struct Header {
    wide: bool,
    little: bool,
    phoff: u64,
    phentsize: u64,
    phnum: u64,
    shoff: u64,
    shentsize: u64,
    shnum: u64,
    shstrndx: u64,
}

impl Header {
    fn number(&self, bytes: &[u8], offset: usize, size: usize) -> Option<u64> {
        let field = bytes.get(offset..offset + size)?;
        let mut value = 0u64;
        for i in 0..size {
            let byte = if self.little {
                field[size - 1 - i]
            } else {
                field[i]
            };
            value = value << 8 | u64::from(byte);
        }
        Some(value)
    }

    /// An address-sized field: 8 bytes in ELF64 at `offset64`, else 4 at `offset32`.
    fn word(&self, bytes: &[u8], offset64: usize, offset32: usize) -> Option<u64> {
        if self.wide {
            self.number(bytes, offset64, 8)
        } else {
            self.number(bytes, offset32, 4)
        }
    }

    fn parse(bytes: &[u8]) -> Option<Header> {
        if bytes.get(..4)? != b"\x7fELF" {
            return None;
        }
        let wide = match bytes.get(4)? {
            1 => false,
            2 => true,
            _ => return None,
        };
        let little = match bytes.get(5)? {
            1 => true,
            2 => false,
            _ => return None,
        };
        let mut header = Header {
            wide,
            little,
            phoff: 0,
            phentsize: 0,
            phnum: 0,
            shoff: 0,
            shentsize: 0,
            shnum: 0,
            shstrndx: 0,
        };
        // e_phoff..e_shstrndx; ELF32 has the same fields, 4-byte offsets.
        let tail = if wide { 0x36 } else { 0x2a };
        header.phoff = header.word(bytes, 0x20, 0x1c)?;
        header.shoff = header.word(bytes, 0x28, 0x20)?;
        header.phentsize = header.number(bytes, tail, 2)?;
        header.phnum = header.number(bytes, tail + 2, 2)?;
        header.shentsize = header.number(bytes, tail + 4, 2)?;
        header.shnum = header.number(bytes, tail + 6, 2)?;
        header.shstrndx = header.number(bytes, tail + 8, 2)?;
        Some(header)
    }
}

/// Reads `len` bytes at `offset` of the file (fewer at its end).
pub trait ReadAt {
    fn read_at(&self, offset: u64, len: usize) -> Option<Vec<u8>>;
    fn len(&self) -> u64;
}

impl ReadAt for [u8] {
    fn read_at(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let start = usize::try_from(offset).ok()?.min(<[u8]>::len(self));
        let end = start.saturating_add(len).min(<[u8]>::len(self));
        Some(self[start..end].to_vec())
    }
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
}

impl ReadAt for std::fs::File {
    fn read_at(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let mut buffer = vec![0; len];
        let mut filled = 0;
        while filled < len {
            let n = std::os::unix::fs::FileExt::read_at(
                self,
                &mut buffer[filled..],
                offset + filled as u64,
            )
            .ok()?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buffer.truncate(filled);
        Some(buffer)
    }
    fn len(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
}

/// Classifies an executable. Anything malformed counts as `NotElf`: a wrong
/// warning is worse than none, and exec will complain about a broken file.
pub fn inspect(file: &(impl ReadAt + ?Sized)) -> Kind {
    let Some(bytes) = file.read_at(0, 64) else {
        return Kind::NotElf;
    };
    let Some(header) = Header::parse(&bytes) else {
        return Kind::NotElf;
    };
    match (is_go(file, &header), has_interpreter(file, &header)) {
        (Some(true), _) => Kind::Go,
        (_, Some(true)) => Kind::Dynamic,
        (_, Some(false)) => Kind::Static,
        (_, None) => Kind::NotElf,
    }
}

/// Tables are read whole; cap them so a hostile header cannot make us
/// allocate gigabytes.
const MAX_TABLE: u64 = 16 << 20;

fn table(file: &(impl ReadAt + ?Sized), offset: u64, entry: u64, count: u64) -> Option<Vec<u8>> {
    let size = entry.checked_mul(count)?;
    if size > MAX_TABLE {
        return None;
    }
    let bytes = file.read_at(offset, size as usize)?;
    (bytes.len() as u64 == size).then_some(bytes)
}

fn has_interpreter(file: &(impl ReadAt + ?Sized), header: &Header) -> Option<bool> {
    if header.phentsize < 4 {
        return None;
    }
    let headers = table(file, header.phoff, header.phentsize, header.phnum)?;
    Some(
        headers
            .chunks(header.phentsize as usize)
            .any(|entry| header.number(entry, 0, 4) == Some(u64::from(PT_INTERP))),
    )
}

fn is_go(file: &(impl ReadAt + ?Sized), header: &Header) -> Option<bool> {
    // A section count of 0 means none, or more than 65279 (then the real
    // count is elsewhere); either way, look for the build info itself.
    if header.shnum == 0 || header.shstrndx >= header.shnum {
        return Some(contains(file, GO_BUILDINFO_MAGIC));
    }
    let entry = header.shentsize;
    let sections = table(file, header.shoff, entry, header.shnum)?;
    let names_header = sections.get((header.shstrndx * entry) as usize..)?;
    let names_offset = header.word(names_header, 0x18, 0x10)?;
    let names_size = header.word(names_header, 0x20, 0x14)?.min(MAX_TABLE);
    let names = file.read_at(names_offset, names_size as usize)?;
    Some(sections.chunks(entry as usize).any(|section| {
        let Some(start) = header.number(section, 0, 4) else {
            return false;
        };
        let name = names.get(start as usize..).unwrap_or_default();
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        GO_SECTIONS.contains(&name)
    }))
}

/// Scans the whole file in chunks that overlap by the needle's length.
fn contains(file: &(impl ReadAt + ?Sized), needle: &[u8]) -> bool {
    const CHUNK: usize = 1 << 20;
    let mut offset = 0;
    while offset < file.len() {
        let Some(chunk) = file.read_at(offset, CHUNK + needle.len()) else {
            return false;
        };
        if chunk.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
        offset += CHUNK as u64;
    }
    false
}

/// PT_INTERP's path (the program's dynamic linker), if it has one.
pub fn interpreter(file: &(impl ReadAt + ?Sized)) -> Option<Vec<u8>> {
    let header = Header::parse(&file.read_at(0, 64)?)?;
    if header.phentsize < 0x20 {
        return None;
    }
    let headers = table(file, header.phoff, header.phentsize, header.phnum)?;
    let entry = headers
        .chunks(header.phentsize as usize)
        .find(|entry| header.number(entry, 0, 4) == Some(u64::from(PT_INTERP)))?;
    // p_offset and p_filesz.
    let offset = header.word(entry, 0x08, 0x04)?;
    let size = header.word(entry, 0x20, 0x10)?.min(4096);
    let mut path = file.read_at(offset, size as usize)?;
    path.truncate(path.iter().position(|&b| b == 0).unwrap_or(path.len()));
    Some(path)
}

/// SHT_GNU_verneed: the symbol versions an object needs from the others.
const SHT_GNU_VERNEED: u64 = 0x6fff_fffe;

/// Every (shared object, version) pair in the object's version needs
/// (`.gnu.version_r`), such as ("libc.so.6", "GLIBC_2.14"): what
/// `objdump -p` lists under "Version References". None if unreadable.
pub fn needed_versions(file: &(impl ReadAt + ?Sized)) -> Option<Vec<(String, String)>> {
    let header = Header::parse(&file.read_at(0, 64)?)?;
    let entry = header.shentsize;
    if entry < 0x28 {
        return None;
    }
    let sections = table(file, header.shoff, entry, header.shnum)?;
    let mut needs = Vec::new();
    for section in sections.chunks(entry as usize) {
        if header.number(section, 4, 4)? != SHT_GNU_VERNEED {
            continue;
        }
        let offset = header.word(section, 0x18, 0x10)?;
        let size = header.word(section, 0x20, 0x14)?.min(MAX_TABLE);
        let link = header.word(section, 0x28, 0x18)? & 0xffff_ffff;
        let strings_header = sections.get((link * entry) as usize..)?;
        let strings_offset = header.word(strings_header, 0x18, 0x10)?;
        let strings_size = header.word(strings_header, 0x20, 0x14)?.min(MAX_TABLE);
        let strings = file.read_at(strings_offset, strings_size as usize)?;
        let bytes = file.read_at(offset, size as usize)?;
        let string = |at: u64| -> Option<String> {
            let tail = strings.get(at as usize..)?;
            let end = tail.iter().position(|&b| b == 0)?;
            Some(String::from_utf8_lossy(&tail[..end]).into_owned())
        };
        // Elf_Verneed {u16 version, u16 cnt, u32 file, u32 aux, u32 next},
        // then cnt Elf_Vernaux {u32 hash, u16 flags, u16 other, u32 name,
        // u32 next}; offsets relative to each entry. Bounded by the section.
        let mut at = 0u64;
        for _ in 0..bytes.len() / 16 {
            let need = bytes.get(at as usize..)?;
            let count = header.number(need, 2, 2)?;
            let object = string(header.number(need, 4, 4)?)?;
            let mut aux = at + header.number(need, 8, 4)?;
            for _ in 0..count {
                let version = bytes.get(aux as usize..)?;
                needs.push((object.clone(), string(header.number(version, 8, 4)?)?));
                match header.number(version, 12, 4)? {
                    0 => break,
                    next => aux += next,
                }
            }
            match header.number(need, 12, 4)? {
                0 => break,
                next => at += next,
            }
        }
    }
    Some(needs)
}

/// SHT_DYNAMIC, and the `.dynamic` tags we read from it.
const SHT_DYNAMIC: u64 = 6;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// What ld.so reads to find an object's dependencies: its `DT_NEEDED`
/// names (as `readelf -d` lists them) and its search path (`DT_RUNPATH`,
/// or the older `DT_RPATH`), split at ':'.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dependencies {
    pub needed: Vec<String>,
    pub search_path: Vec<String>,
}

/// The object's `.dynamic` section, read as `Dependencies`; None if it has
/// none or cannot be read.
pub fn dependencies(file: &(impl ReadAt + ?Sized)) -> Option<Dependencies> {
    let header = Header::parse(&file.read_at(0, 64)?)?;
    let entry = header.shentsize;
    if entry < 0x28 {
        return None;
    }
    let sections = table(file, header.shoff, entry, header.shnum)?;
    let section = sections
        .chunks(entry as usize)
        .find(|section| header.number(section, 4, 4) == Some(SHT_DYNAMIC))?;
    let offset = header.word(section, 0x18, 0x10)?;
    let size = header.word(section, 0x20, 0x14)?.min(MAX_TABLE);
    let link = header.word(section, 0x28, 0x18)? & 0xffff_ffff;
    let strings_header = sections.get((link * entry) as usize..)?;
    let strings_offset = header.word(strings_header, 0x18, 0x10)?;
    let strings_size = header.word(strings_header, 0x20, 0x14)?.min(MAX_TABLE);
    let strings = file.read_at(strings_offset, strings_size as usize)?;
    let string = |at: u64| -> Option<String> {
        let tail = strings.get(at as usize..)?;
        let end = tail.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&tail[..end]).into_owned())
    };
    // Elf_Dyn {d_tag, d_val}: two words each.
    let width = if header.wide { 8 } else { 4 };
    let bytes = file.read_at(offset, size as usize)?;
    let mut found = Dependencies::default();
    let (mut runpath, mut rpath) = (None, None);
    for dynamic in bytes.chunks_exact(2 * width) {
        let value = header.word(dynamic, 8, 4)?;
        match header.word(dynamic, 0, 0)? {
            DT_NULL => break,
            DT_NEEDED => found.needed.push(string(value)?),
            DT_RUNPATH => runpath = Some(string(value)?),
            DT_RPATH => rpath = Some(string(value)?),
            _ => {}
        }
    }
    // ld.so ignores DT_RPATH when DT_RUNPATH is there.
    if let Some(path) = runpath.or(rpath) {
        found.search_path = path.split(':').map(str::to_string).collect();
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspect_file(path: &str) -> Kind {
        inspect(&std::fs::File::open(path).unwrap())
    }

    #[test]
    fn this_test_binary_is_dynamic() {
        assert_eq!(inspect_file("/proc/self/exe"), Kind::Dynamic);
    }

    #[test]
    fn scripts_and_garbage_are_not_elf() {
        assert_eq!(inspect(b"#!/bin/sh\necho hi\n".as_slice()), Kind::NotElf);
        assert_eq!(inspect(b"\x7fELF".as_slice()), Kind::NotElf);
        assert_eq!(inspect(b"".as_slice()), Kind::NotElf);
        // A header promising tables far beyond the end of the file.
        let mut bogus = std::fs::read("/proc/self/exe").unwrap()[..64].to_vec();
        bogus[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(inspect(bogus.as_slice()), Kind::NotElf);
    }

    #[test]
    fn no_interpreter_means_static() {
        // Clear PT_INTERP in a copy of this (dynamic) binary.
        let mut bytes = std::fs::read("/proc/self/exe").unwrap();
        let header = Header::parse(&bytes).unwrap();
        for i in 0..header.phnum {
            let at = (header.phoff + i * header.phentsize) as usize;
            if header.number(&bytes, at, 4) == Some(u64::from(PT_INTERP)) {
                bytes[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
            }
        }
        assert_eq!(inspect(bytes.as_slice()), Kind::Static);
    }

    /// This binary's section-name table (its offset and bytes).
    fn section_names(bytes: &[u8]) -> (usize, Vec<u8>) {
        let header = Header::parse(bytes).unwrap();
        let at = (header.shoff + header.shstrndx * header.shentsize) as usize;
        let offset = header.word(&bytes[at..], 0x18, 0x10).unwrap() as usize;
        let size = header.word(&bytes[at..], 0x20, 0x14).unwrap() as usize;
        (offset, bytes[offset..offset + size].to_vec())
    }

    #[test]
    fn a_go_section_name_means_go() {
        let mut bytes = std::fs::read("/proc/self/exe").unwrap();
        // Rename .note.gnu.build-id (as long, or longer) in the name table.
        let (offset, names) = section_names(&bytes);
        let gnu = b".note.gnu.build-id\0";
        let at = offset
            + names
                .windows(gnu.len())
                .position(|w| w == gnu)
                .expect("linker left no .note.gnu.build-id");
        bytes[at..at + gnu.len()].copy_from_slice(b".note.go.buildid\0\0\0");
        assert_eq!(inspect(bytes.as_slice()), Kind::Go);
    }

    #[test]
    fn go_build_info_without_sections_is_go() {
        let mut bytes = std::fs::read("/proc/self/exe").unwrap();
        // This binary holds the magic itself (it searches for it): blank it.
        let magic = GO_BUILDINFO_MAGIC;
        while let Some(at) = bytes.windows(magic.len()).position(|w| w == magic) {
            bytes[at] = b'x';
        }
        // Drop the section headers (as sstrip does), then add Go's magic.
        bytes[0x3c..0x3e].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(inspect(bytes.as_slice()), Kind::Dynamic);
        bytes.extend_from_slice(GO_BUILDINFO_MAGIC);
        assert_eq!(inspect(bytes.as_slice()), Kind::Go);
    }

    #[test]
    fn this_test_binary_needs_libc_and_has_no_search_path() {
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let found = dependencies(&file).unwrap();
        assert!(found.needed.iter().any(|n| n == "libc.so.6"), "{found:?}");
        assert!(found.search_path.is_empty(), "{found:?}");
        assert_eq!(dependencies(b"#!/bin/sh\n".as_slice()), None);
    }
}
