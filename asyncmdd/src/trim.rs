//! Giving back what start-up touched. Once the boot is over, the daemon asks the kernel to
//! page out its own executable's read-only mappings (`MADV_PAGEOUT`): the code that parsed unit
//! files, planned the boot and set up the runtime leaves memory, and the code that runs comes
//! back on its first use (a minor fault from the page cache, or a read on a box short of
//! memory). The resident set is then what the daemon runs, not what it once ran: on a small
//! box that is most of its memory.

use std::path::Path;

/// What the executable's pages took before and after the page-out, in bytes (`RssFile` of
/// `/proc/self/status`, which also counts the shared libraries, left alone here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    /// Resident file-backed memory before.
    pub before: u64,
    /// Resident file-backed memory after.
    pub after: u64,
}

/// Pages out the read-only mappings of this process's executable. An error names what could
/// not be read or advised (a kernel before 5.4 has no `MADV_PAGEOUT`); nothing else changes.
pub fn page_out_code() -> std::io::Result<Trimmed> {
    let before = rss_file()?;
    let exe = std::fs::read_link("/proc/self/exe")?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    for (start, len) in code_ranges(&maps, &exe) {
        // SAFETY: the range is a whole mapping of this process, as /proc/self/maps lists it;
        // MADV_PAGEOUT changes no contents, it only drops clean pages the next access reads
        // again.
        let r = unsafe { nix::libc::madvise(start as *mut _, len, nix::libc::MADV_PAGEOUT) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(Trimmed {
        before,
        after: rss_file()?,
    })
}

/// The mappings of `exe` in `maps` (the text of /proc/PID/maps) that are not writable, as
/// (start, length): its code and read-only data, never its written data.
fn code_ranges(maps: &str, exe: &Path) -> Vec<(usize, usize)> {
    let exe = exe.to_string_lossy();
    maps.lines()
        .filter_map(|line| {
            // address perms offset dev inode path (the path may hold spaces)
            let mut f = line.splitn(6, ' ');
            let range = f.next()?;
            let perms = f.next()?;
            let path = f.nth(3)?.trim_start();
            if path != exe || perms.contains('w') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let start = usize::from_str_radix(a, 16).ok()?;
            let end = usize::from_str_radix(b, 16).ok()?;
            (end > start).then(|| (start, end - start))
        })
        .collect()
}

/// `RssFile` of /proc/self/status, in bytes.
fn rss_file() -> std::io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssFile:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| std::io::Error::other("no RssFile in /proc/self/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_read_only_mappings() {
        let maps = "\
5600-5700 r--p 00000000 08:01 12 /usr/bin/asyncmdd
5700-5a00 r-xp 00100000 08:01 12 /usr/bin/asyncmdd
5a00-5b00 rw-p 00400000 08:01 12 /usr/bin/asyncmdd
5b00-5c00 r-xp 00000000 08:01 13 /usr/lib/libc.so.6
5c00-5d00 rw-p 00000000 00:00 0 [heap]
6000-6100 r-xp 00000000 08:01 14 /opt/my dir/asyncmdd
";
        let exe = Path::new("/usr/bin/asyncmdd");
        assert_eq!(
            code_ranges(maps, exe),
            vec![(0x5600, 0x100), (0x5700, 0x300)]
        );
        let spaced = Path::new("/opt/my dir/asyncmdd");
        assert_eq!(code_ranges(maps, spaced), vec![(0x6000, 0x100)]);
    }

    #[test]
    fn this_process_can_give_back_its_code() {
        let t = page_out_code().expect("MADV_PAGEOUT works on this kernel");
        assert!(t.before > 0, "{t:?}");
    }
}
