//! Reading the audit log from its end: the last complete line, the torn tail after it, and the
//! lines before them one at a time, newest first. What a command needs of the log is nearly
//! always at its end (the chain head to append after, whether the last write was torn, the last
//! entry recording the manifest, the last drill), so these readers cost what they return, not
//! the length of the history: a window of [`WINDOW`] bytes is read before the end, and more
//! only while the line being looked for is longer than that (the window doubles each time, so
//! a long line costs a few reads). Only the lines asked for are held, never the whole log.
//!
//! The results are those of splitting the whole file (`audit::split`): bytes after the last
//! newline are a torn tail; when there are none, a last non-blank line that is not an entry is
//! one (with the blank lines after it); blank lines are no lines. The unit tests below compare
//! the two readers on many logs.

use std::io::{Read, Seek, SeekFrom};

/// How many bytes are read at a time, backwards from the end.
pub(crate) const WINDOW: usize = 8192;

/// The file's segments between newlines, last first (as `bytes.split(|b| *b == b'\n')` yields
/// them, reversed): the first is what follows the last newline (empty when the file ends with
/// one), then every line before it, blank ones included, with the offset where each starts.
pub(crate) struct Segments<R> {
    file: R,
    /// Where `unread` starts in the file.
    start: u64,
    /// The bytes read and not yet returned: the file from `start` up to the end of the next
    /// segment to return.
    unread: Vec<u8>,
    /// Whether the segment at offset 0 was returned.
    done: bool,
}

impl<R: Read + Seek> Segments<R> {
    /// The segments of `file`, from its end as it is now.
    pub(crate) fn new(mut file: R) -> std::io::Result<Segments<R>> {
        let len = file.seek(SeekFrom::End(0))?;
        Ok(Segments {
            file,
            start: len,
            unread: Vec::new(),
            done: false,
        })
    }

    /// Reads the bytes before `start`: a window, or as many as are held already when that is
    /// more (so a long line is read in a few doubling steps). `false` at the file's start.
    fn read_before(&mut self) -> std::io::Result<bool> {
        if self.start == 0 {
            return Ok(false);
        }
        let want = WINDOW.max(self.unread.len()) as u64;
        let begin = self.start.saturating_sub(want);
        let mut chunk = vec![0u8; (self.start - begin) as usize];
        self.file.seek(SeekFrom::Start(begin))?;
        self.file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&self.unread);
        self.unread = chunk;
        self.start = begin;
        Ok(true)
    }

    /// The segment before the last one returned: where it starts, and its bytes (without the
    /// newline). `None` once the segment at the file's start was returned.
    pub(crate) fn next_back(&mut self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        if self.done {
            return Ok(None);
        }
        loop {
            if let Some(i) = self.unread.iter().rposition(|b| *b == b'\n') {
                let segment = self.unread.split_off(i + 1);
                self.unread.truncate(i);
                return Ok(Some((self.start + i as u64 + 1, segment)));
            }
            if !self.read_before()? {
                self.done = true;
                return Ok(Some((0, std::mem::take(&mut self.unread))));
            }
        }
    }
}

/// The end of the log: where a torn tail starts and how long it is, and the complete
/// non-blank lines before it, last first.
pub(crate) struct Tail<R> {
    segments: Segments<R>,
    /// The torn tail, `(offset, len)`.
    pub(crate) torn: Option<(u64, u64)>,
    /// The last complete line, found while looking for the torn tail.
    peeked: Option<(u64, Vec<u8>)>,
}

impl<R: Read + Seek> Tail<R> {
    /// Reads the end of `file`: the bytes after its last newline, then its last non-blank line
    /// (a torn tail when nothing follows the newline and `is_entry` refuses it).
    pub(crate) fn new(mut file: R, is_entry: impl Fn(&[u8]) -> bool) -> std::io::Result<Tail<R>> {
        let len = file.seek(SeekFrom::End(0))?;
        let mut segments = Segments::new(file)?;
        let mut torn = None;
        if let Some((offset, after)) = segments.next_back()?
            && !after.is_empty()
        {
            torn = Some((offset, len - offset));
        }
        let mut tail = Tail {
            segments,
            torn,
            peeked: None,
        };
        let last = tail.next_line()?;
        match last {
            Some((offset, line)) if tail.torn.is_none() && !is_entry(&line) => {
                tail.torn = Some((offset, len - offset));
            }
            last => tail.peeked = last,
        }
        Ok(tail)
    }

    /// The next non-blank segment back.
    fn next_line(&mut self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        while let Some((offset, segment)) = self.segments.next_back()? {
            if !segment.is_empty() {
                return Ok(Some((offset, segment)));
            }
        }
        Ok(None)
    }

    /// The complete line before the last one returned (the last complete line first): where
    /// it starts and its bytes. `None` after the first line.
    pub(crate) fn next_back(&mut self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        match self.peeked.take() {
            Some(line) => Ok(Some(line)),
            None => self.next_line(),
        }
    }
}

/// How many non-blank lines the first `end` bytes of `file` hold, read forwards a window at a
/// time (for a torn tail's line number: the one answer the end of the log cannot give).
pub(crate) fn count_lines(file: impl Read, end: u64) -> std::io::Result<usize> {
    let mut reader = file.take(end);
    let mut buffer = vec![0u8; WINDOW * 8];
    let (mut count, mut in_line) = (0, false);
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        for b in &buffer[..n] {
            if *b == b'\n' {
                count += usize::from(in_line);
                in_line = false;
            } else {
                in_line = true;
            }
        }
    }
    Ok(count + usize::from(in_line))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::io::Cursor;
    use std::rc::Rc;

    use proptest::prelude::*;

    use super::*;

    /// A reader that counts the bytes read through it.
    struct Counting<R> {
        inner: R,
        read: Rc<Cell<u64>>,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.set(self.read.get() + n as u64);
            Ok(n)
        }
    }

    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    fn counting(bytes: &[u8]) -> (Counting<Cursor<Vec<u8>>>, Rc<Cell<u64>>) {
        let read = Rc::new(Cell::new(0));
        (
            Counting {
                inner: Cursor::new(bytes.to_vec()),
                read: read.clone(),
            },
            read,
        )
    }

    /// What the tests call an entry: a line that starts with `{` and ends with `}`.
    fn entry(line: &[u8]) -> bool {
        line.first() == Some(&b'{') && line.last() == Some(&b'}')
    }

    /// The complete lines (each with its offset) and the torn tail `(offset, len)`.
    type Split = (Vec<(u64, Vec<u8>)>, Option<(u64, u64)>);

    /// The whole-file reader's answer: the complete lines and the torn tail `(offset, len)`,
    /// from `audit::split`'s rules applied to `bytes` (the reference these readers match).
    fn whole(bytes: &[u8]) -> Split {
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut lines = Vec::new();
        let mut at = 0u64;
        for segment in bytes[..complete].split(|b| *b == b'\n') {
            if !segment.is_empty() {
                lines.push((at, segment.to_vec()));
            }
            at += segment.len() as u64 + 1;
        }
        let mut torn_at = complete as u64;
        if complete == bytes.len() && lines.last().is_some_and(|(_, l)| !entry(l)) {
            torn_at = lines.pop().unwrap().0;
        }
        let torn = (torn_at < bytes.len() as u64).then(|| (torn_at, bytes.len() as u64 - torn_at));
        (lines, torn)
    }

    /// The tail reader's answer on the same bytes, every complete line read back.
    fn from_end(bytes: &[u8]) -> Split {
        let mut tail = Tail::new(Cursor::new(bytes.to_vec()), entry).unwrap();
        let mut lines = Vec::new();
        while let Some(line) = tail.next_back().unwrap() {
            lines.push(line);
        }
        lines.reverse();
        (lines, tail.torn)
    }

    fn same(bytes: &[u8]) {
        let expected = whole(bytes);
        assert_eq!(
            from_end(bytes),
            expected,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        // The line number of a torn tail, by counting forwards.
        if let Some((offset, _)) = expected.1 {
            assert_eq!(
                count_lines(Cursor::new(bytes), offset).unwrap(),
                expected.0.len()
            );
        }
        assert_eq!(
            count_lines(Cursor::new(bytes), bytes.len() as u64).unwrap(),
            bytes
                .split(|b| *b == b'\n')
                .filter(|s| !s.is_empty())
                .count()
        );
    }

    #[test]
    fn the_tail_reader_finds_what_the_whole_file_reader_finds() {
        let long = format!("{{{}}}", "x".repeat(3 * WINDOW + 17));
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\n".to_vec(),
            b"\n\n\n".to_vec(),
            b"{1}\n".to_vec(),
            b"{1}".to_vec(),
            b"{1}\n{2}\n".to_vec(),
            b"{1}\n{2".to_vec(),
            b"{1}\nx".to_vec(),
            b"{1}\n{2\n".to_vec(),
            b"{1}\n{2\n\n\n".to_vec(),
            b"{1}\n\n{2}\n\n".to_vec(),
            b"\n\n{1}\n\n\n{2}\n".to_vec(),
            b"{1}\n{2}\n\0\0\0".to_vec(),
            b"{1}\n{2}\n\n{3".to_vec(),
            b"torn".to_vec(),
            b"torn\n".to_vec(),
            b"torn\n\n".to_vec(),
            b"{1}\nnot an entry\n{3}\n".to_vec(),
            format!("{long}\n").into_bytes(),
            format!("{{1}}\n{long}\n{{3}}\n").into_bytes(),
            format!("{{1}}\n{long}").into_bytes(),
            format!("{{1}}\n{}\n\n", &long[..long.len() - 1]).into_bytes(),
            format!("{long}\n{long}\n{}", "t".repeat(2 * WINDOW)).into_bytes(),
        ];
        for bytes in cases {
            same(&bytes);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Logs made of entries, lines that are not entries, blank lines and torn bytes, with
        /// lines around the window's length.
        #[test]
        fn on_any_log_the_tail_reader_agrees_with_the_whole_file_reader(
            parts in proptest::collection::vec(
                prop_oneof![
                    (0usize..40).prop_map(|n| format!("{{{}}}\n", "e".repeat(n))),
                    (WINDOW - 4..WINDOW + 4).prop_map(|n| format!("{{{}}}\n", "e".repeat(n))),
                    (1usize..30).prop_map(|n| format!("{}\n", "t".repeat(n))),
                    Just("\n".to_owned()),
                ],
                0..12,
            ),
            torn in proptest::option::of("[a-z{}]{1,20}"),
        ) {
            let mut bytes = parts.concat().into_bytes();
            if let Some(torn) = torn {
                bytes.extend_from_slice(torn.as_bytes());
            }
            same(&bytes);
        }
    }

    /// A log of `n` lines of about 200 bytes, as breakglass writes them.
    fn log(n: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for i in 1..=n {
            bytes.extend_from_slice(
                format!(
                    "{{\"seq\":{i},\"event\":\"seal\",\"details\":{{\"n\":\"{}\"}}}}\n",
                    "x".repeat(160)
                )
                .as_bytes(),
            );
        }
        bytes
    }

    #[test]
    fn the_end_of_a_long_log_is_found_reading_a_bounded_number_of_bytes() {
        for n in [10, 1_000, 100_000] {
            let bytes = log(n);
            let (file, read) = counting(&bytes);
            let mut tail = Tail::new(file, entry).unwrap();
            assert_eq!(tail.torn, None);
            let (offset, last) = tail.next_back().unwrap().unwrap();
            assert!(last.starts_with(format!("{{\"seq\":{n},").as_bytes()));
            assert_eq!(offset + last.len() as u64 + 1, bytes.len() as u64);
            assert!(
                read.get() <= WINDOW as u64,
                "{n} lines: {} bytes read for the last line",
                read.get()
            );

            // A torn tail: found in the same window.
            let mut torn = bytes.clone();
            torn.extend_from_slice(b"{\"seq\":");
            let (file, read) = counting(&torn);
            let tail = Tail::new(file, entry).unwrap();
            assert_eq!(tail.torn, Some((bytes.len() as u64, 7)));
            assert!(read.get() <= WINDOW as u64, "{n} lines: {}", read.get());
        }
    }

    #[test]
    fn a_line_longer_than_the_window_costs_its_length_and_at_most_as_much_again() {
        let line = format!("{{{}}}\n", "y".repeat(20 * WINDOW));
        let mut bytes = log(50_000);
        bytes.extend_from_slice(line.as_bytes());
        let (file, read) = counting(&bytes);
        let mut tail = Tail::new(file, entry).unwrap();
        let (_, last) = tail.next_back().unwrap().unwrap();
        assert_eq!(last.len() + 1, line.len());
        // Doubling windows: the line, plus less than the line and one window before it.
        assert!(
            read.get() <= 2 * line.len() as u64 + WINDOW as u64,
            "{} bytes read for a line of {}",
            read.get(),
            line.len()
        );
        // Walking back k lines reads about k lines more, not the log.
        let before = read.get();
        for _ in 0..100 {
            tail.next_back().unwrap().unwrap();
        }
        assert!(read.get() - before <= 100 * 200 + 2 * WINDOW as u64 + line.len() as u64);
    }
}
