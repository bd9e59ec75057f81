//! The formats of `/proc/PID` files, for `keepalive --status`: its mapped
//! files, initial environment, auxiliary vector, socket links, mounts and
//! the TCP table of its network namespace. Only parsing: `pinned` reads
//! them, so the formats are unit-tested on fixed text.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The files mapped executable into the process (`/proc/PID/maps`: perms
/// with `x`, 6th column the path), once each, in order. Executable only:
/// when ld.so fails to load a preload (say, on a noexec mount), it can
/// leave a read-only mapping of the file behind.
pub fn executable_files(text: &[u8]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        // address perms offset dev inode [path]; the path may hold spaces.
        let mut words = Vec::new();
        let mut rest = line;
        for _ in 0..5 {
            let Some(space) = rest.iter().position(|&b| b == b' ') else {
                rest = b"";
                break;
            };
            words.push(&rest[..space]);
            rest = &rest[space + 1..];
            while rest.first() == Some(&b' ') {
                rest = &rest[1..];
            }
        }
        let executable = words.get(1).is_some_and(|perms| perms.contains(&b'x'));
        if executable && rest.first() == Some(&b'/') {
            let file = PathBuf::from(OsStr::from_bytes(rest));
            if !files.contains(&file) {
                files.push(file);
            }
        }
    }
    files
}

/// `NAME=VALUE\0...` into a lookup; the first of a repeated name wins, as
/// with getenv.
pub fn parse_environ(bytes: &[u8]) -> HashMap<Vec<u8>, Vec<u8>> {
    let mut variables = HashMap::new();
    for entry in bytes.split(|&b| b == 0) {
        if let Some(eq) = entry.iter().position(|&b| b == b'=') {
            variables
                .entry(entry[..eq].to_vec())
                .or_insert_with(|| entry[eq + 1..].to_vec());
        }
    }
    variables
}

/// The entries of an `LD_PRELOAD` value (ld.so splits at spaces and colons).
pub fn preload_entries(value: &[u8]) -> Vec<PathBuf> {
    value
        .split(|&b| b == b' ' || b == b':')
        .filter(|entry| !entry.is_empty())
        .map(|entry| PathBuf::from(OsStr::from_bytes(entry)))
        .collect()
}

/// Whether a file name is one of our library's (`libkeepalive.so`, or a
/// versioned or renamed copy such as `libkeepalive.so.0`).
pub fn is_our_library(file: &Path) -> bool {
    file.file_name()
        .map(|name| name.as_bytes().starts_with(b"libkeepalive"))
        .unwrap_or(false)
}

/// One `/proc/net/tcp` or `tcp6` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRow {
    pub local: String,
    pub remote: String,
    pub state: &'static str,
    /// The pending timer: 0 none, 1 retransmit, 2 keepalive (sk_timer),
    /// 3 TIME_WAIT, 4 zero window probe.
    pub timer: u8,
    /// Time left on it, in clock ticks (USER_HZ).
    pub timer_ticks: u64,
    /// Unanswered probes or retransmissions so far.
    pub retransmits: u32,
    pub inode: u64,
}

/// The states' names as `ss` prints them (include/net/tcp_states.h).
fn state_name(code: u8) -> &'static str {
    match code {
        1 => "ESTABLISHED",
        2 => "SYN-SENT",
        3 => "SYN-RECV",
        4 => "FIN-WAIT-1",
        5 => "FIN-WAIT-2",
        6 => "TIME-WAIT",
        7 => "CLOSE",
        8 => "CLOSE-WAIT",
        9 => "LAST-ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "UNKNOWN",
    }
}

/// `ADDR:PORT` as the kernel prints it: the address as 32-bit words of
/// network-order bytes printed in host order, the port in host order.
fn parse_endpoint(text: &str) -> Option<String> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::new();
    for word in 0..address.len() / 8 {
        let value = u32::from_str_radix(address.get(word * 8..word * 8 + 8)?, 16).ok()?;
        bytes.extend_from_slice(&value.to_ne_bytes());
    }
    match bytes.len() {
        4 => {
            let ip = std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
            Some(format!("{ip}:{port}"))
        }
        16 => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            let ip = std::net::Ipv6Addr::from(octets);
            Some(format!("[{ip}]:{port}"))
        }
        _ => None,
    }
}

/// The rows of `/proc/net/tcp` or `tcp6` (the header line is skipped).
pub fn parse_tcp_table(text: &str) -> Vec<TcpRow> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
            let (timer, when) = words.get(5)?.split_once(':')?;
            Some(TcpRow {
                local: parse_endpoint(words.get(1)?)?,
                remote: parse_endpoint(words.get(2)?)?,
                state: state_name(u8::from_str_radix(words.get(3)?, 16).ok()?),
                timer: u8::from_str_radix(timer, 16).ok()?,
                timer_ticks: u64::from_str_radix(when, 16).ok()?,
                retransmits: u32::from_str_radix(words.get(6)?, 16).ok()?,
                inode: words.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// The inode of a descriptor's link text `socket:[INODE]`; `None` for
/// anything else.
pub fn socket_inode(link: &[u8]) -> Option<u64> {
    std::str::from_utf8(link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?)
        .ok()?
        .parse()
        .ok()
}

/// The TCP rows of a network namespace's `net/tcp` and `net/tcp6`, by
/// inode. `read` gives a file's text (tcp6 is missing when IPv6 is off:
/// that only means no rows).
pub fn tcp_rows(read: impl Fn(&str) -> Option<Vec<u8>>) -> HashMap<u64, TcpRow> {
    let mut rows = HashMap::new();
    for table in ["net/tcp", "net/tcp6"] {
        if let Some(text) = read(table) {
            for row in parse_tcp_table(&String::from_utf8_lossy(&text)) {
                rows.insert(row.inode, row);
            }
        }
    }
    rows
}

/// `AT_EXECFN` and `AT_SECURE` from `/proc/PID/auxv` (native word pairs).
pub fn parse_auxv(bytes: &[u8]) -> (Option<u64>, Option<bool>) {
    let (mut execfn, mut secure) = (None, None);
    for pair in bytes.chunks_exact(16) {
        let key = u64::from_ne_bytes(pair[..8].try_into().unwrap_or_default());
        let value = u64::from_ne_bytes(pair[8..].try_into().unwrap_or_default());
        match key {
            k if k == libc::AT_EXECFN => execfn = Some(value),
            k if k == libc::AT_SECURE => secure = Some(value != 0),
            _ => {}
        }
    }
    (execfn, secure)
}

/// Whether `file` lies on a file system mounted `noexec`, according to a
/// `/proc/PID/mountinfo` (the process's own view: systemd's `NoExecPaths=`
/// is such a mount). The deepest mount point holding the file decides, and
/// of equal ones the last mounted. `None` if no mount holds it.
pub fn on_noexec_mount(mountinfo: &str, file: &Path) -> Option<bool> {
    let mut best: Option<(usize, bool)> = None;
    for line in mountinfo.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let (Some(point), Some(options)) = (words.get(4), words.get(5)) else {
            continue;
        };
        let point = unescape_octal(point);
        if !file.starts_with(&point) {
            continue;
        }
        let depth = Path::new(&point).components().count();
        let deeper_seen = matches!(best, Some((deepest, _)) if deepest > depth);
        if !deeper_seen {
            best = Some((depth, options.split(',').any(|o| o == "noexec")));
        }
    }
    best.map(|(_, noexec)| noexec)
}

/// Mount points escape spaces and such as `\040` (mountinfo writes space,
/// tab, newline and backslash as `\ooo`).
pub fn unescape_octal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(digits)) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_give_each_executable_file_once() {
        let maps = b"55d0-55d1 r--p 00000000 08:01 123 /usr/bin/cat\n\
            55d1-55d2 r-xp 00001000 08:01 123 /usr/bin/cat\n\
            55d2-55d3 r-xp 00002000 08:01 123 /usr/bin/cat\n\
            7f00-7f01 r-xp 00000000 08:01 9 /opt/my dir/libkeepalive.so (deleted)\n\
            7f01-7f02 rw-p 00000000 00:00 0 \n\
            7f02-7f03 r--p 00000000 00:27 2                  /tmp/nx/libkeepalive.so\n\
            7ffc-7ffd rw-p 00000000 00:00 0                          [stack]\n";
        assert_eq!(
            executable_files(maps),
            [
                PathBuf::from("/usr/bin/cat"),
                PathBuf::from("/opt/my dir/libkeepalive.so (deleted)")
            ]
        );
    }

    #[test]
    fn environ_and_preload() {
        let env = parse_environ(b"A=1\0LD_PRELOAD=/x/a.so:libkeepalive.so  b.so\0A=2\0junk\0");
        assert_eq!(env[&b"A".to_vec()], b"1");
        let preload = preload_entries(&env[&b"LD_PRELOAD".to_vec()]);
        assert_eq!(
            preload,
            [
                PathBuf::from("/x/a.so"),
                PathBuf::from("libkeepalive.so"),
                PathBuf::from("b.so")
            ]
        );
        assert!(is_our_library(Path::new("/usr/lib/libkeepalive.so.0")));
        assert!(!is_our_library(Path::new("/usr/lib/libkeepalive/x.so")));
        assert_eq!(socket_inode(b"socket:[4242]"), Some(4242));
        assert_eq!(socket_inode(b"pipe:[4242]"), None);
        assert_eq!(socket_inode(b"/tmp/socket:[1]"), None);
    }

    #[test]
    fn tcp_tables_as_the_kernel_prints_them() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 02:00001770 00000002     0        0 4242 1 0000000000000000 20 4 30 10 -1\n";
        let rows = parse_tcp_table(v4);
        assert_eq!(
            rows,
            [TcpRow {
                local: "127.0.0.1:8080".into(),
                remote: "127.0.0.1:54000".into(),
                state: "ESTABLISHED",
                timer: 2,
                timer_ticks: 6000,
                retransmits: 2,
                inode: 4242,
            }]
        );
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 100 0 0 10 0\n\
           1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000200007F:0016 01 00000000:00000000 00:00000000 00000000     0        0 78 1 0000000000000000 100 0 0 10 0\n";
        let rows = parse_tcp_table(v6);
        assert_eq!(rows[0].local, "[::1]:8080");
        assert_eq!(rows[0].state, "LISTEN");
        assert_eq!(rows[1].local, "[::ffff:127.0.0.1]:8080");
        assert_eq!(rows[1].remote, "[::ffff:127.0.0.2]:22");
    }

    #[test]
    fn noexec_mounts() {
        let info = "21 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    30 21 0:25 / /usr rw,relatime - ext4 /dev/sda2 rw\n\
                    40 21 0:26 / /opt/my\\040dir rw,noexec - tmpfs none rw\n\
                    41 30 8:1 /usr /usr ro,nosuid,nodev,noexec,relatime - ext4 /dev/sda1 rw\n\
                    42 41 8:1 /usr/local/lib /usr/local/lib ro,relatime - ext4 /dev/sda1 rw\n";
        let on = |path: &str| on_noexec_mount(info, Path::new(path));
        assert_eq!(on("/usr/lib/libkeepalive.so"), Some(true));
        assert_eq!(on("/usr/local/lib/libkeepalive.so"), Some(false));
        assert_eq!(on("/opt/my dir/libkeepalive.so"), Some(true));
        assert_eq!(on("/opt/other/libkeepalive.so"), Some(false));
        assert_eq!(on("/usrx/libkeepalive.so"), Some(false));
        assert_eq!(on_noexec_mount("", Path::new("/x")), None);
    }

    #[test]
    fn auxv_pairs() {
        let mut auxv = Vec::new();
        for (key, value) in [
            (libc::AT_SECURE, 1u64),
            (libc::AT_EXECFN, 0x7ffd_0000),
            (0, 0),
        ] {
            auxv.extend_from_slice(&key.to_ne_bytes());
            auxv.extend_from_slice(&value.to_ne_bytes());
        }
        assert_eq!(parse_auxv(&auxv), (Some(0x7ffd_0000), Some(true)));
    }
}
