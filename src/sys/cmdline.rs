//! This process's own command line, rewritten in place: the fork server's inits name
//! themselves there (`ps` shows `nslab __init - lab/node`), as an exec'd one would.

/// Where this process's arguments after `argv[0]` lie in its memory, as the kernel
/// reports them (`/proc/self/stat`'s `arg_start` and `arg_end`). Only [`ArgArea::find`]
/// makes one, so its bounds are always the kernel's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgArea {
    start: usize,
    end: usize,
}

impl ArgArea {
    /// The area, or `None` when /proc cannot say or there is no argument after `argv[0]`.
    pub fn find() -> Option<ArgArea> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let cmdline = std::fs::read("/proc/self/cmdline").ok()?;
        ArgArea::parse(&stat, &cmdline)
    }

    /// The area from `/proc/self/stat` and `/proc/self/cmdline`'s contents.
    fn parse(stat: &str, cmdline: &[u8]) -> Option<ArgArea> {
        // Fields after the command name, which may hold spaces: state is field 3,
        // arg_start and arg_end are 48 and 49.
        let rest = &stat[stat.rfind(')')? + 2..];
        let mut f = rest.split_whitespace().skip(45);
        let start: usize = f.next()?.parse().ok()?;
        let end: usize = f.next()?.parse().ok()?;
        let first = cmdline.iter().position(|&b| b == 0)? + 1;
        (start + first < end).then_some(ArgArea {
            start: start + first,
            end,
        })
    }

    /// Writes `args` (NUL-separated) over the area, cut to fit and NUL-padded: the
    /// kernel shows the whole area when its last byte is NUL.
    pub fn write(&self, args: &[u8]) {
        let len = self.end - self.start;
        let mut bytes = args.to_vec();
        bytes.truncate(len - 1);
        bytes.resize(len, 0);
        // SAFETY: the area is this process's own argument strings, writable memory the
        // kernel gave it at exec and that nothing in Rust refers to (std copied the
        // arguments at start-up); `find` took its bounds from the kernel.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.start as *mut u8, len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `stat` line whose command holds `) (` and spaces, arguments at 1000..1020.
    fn stat(start: usize, end: usize) -> String {
        let mut f: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        f[0] = "S".into();
        f[45] = start.to_string();
        f[46] = end.to_string();
        format!("42 (a) (b c) {}", f.join(" "))
    }

    #[test]
    fn the_area_starts_after_argv0_and_ends_where_the_kernel_says() {
        let cmdline = b"/bin/nslab\0__zygote\0xxxx\0";
        assert_eq!(
            ArgArea::parse(&stat(1000, 1027), cmdline),
            Some(ArgArea {
                start: 1011,
                end: 1027
            })
        );
        // No argument after argv[0]: nothing to write over.
        assert_eq!(ArgArea::parse(&stat(1000, 1011), b"/bin/nslab\0"), None);
        assert_eq!(ArgArea::parse("garbage", cmdline), None);
    }

    /// In a child (the command line is the whole process's), where this test binary
    /// has arguments after argv[0]: what is written is what /proc shows, cut to fit.
    #[test]
    fn a_written_command_line_is_what_proc_shows() {
        let code = crate::sys::child::testing::in_child(|| {
            let Some(area) = ArgArea::find() else {
                // Run without arguments: nothing of this process to write over.
                return 0;
            };
            area.write(b"x");
            let Ok(cmdline) = std::fs::read("/proc/self/cmdline") else {
                return 2;
            };
            let first = cmdline.iter().position(|&b| b == 0).unwrap_or(0) + 1;
            i32::from(!cmdline[first..].starts_with(b"x\0")) * 3
        });
        assert_eq!(code, Some(0));
    }
}
