//! A write-once buffer for report sections that must come out after a
//! summary not known until the end (the text and HTML reports put the
//! verdict first). Small reports stay in memory; past a threshold the
//! bytes go to an unnamed temporary file, so a report of many thousands
//! of calls costs disk, not memory.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Bytes kept in memory before spilling to a temporary file.
const IN_MEMORY: usize = 8 * 1024 * 1024;

/// Bytes written now, read back once.
#[derive(Default)]
pub struct Spool {
    memory: Vec<u8>,
    file: Option<io::BufWriter<File>>,
}

impl Spool {
    /// Copies everything written into `out`, consuming the spool.
    pub fn copy_into(self, out: &mut dyn Write) -> io::Result<()> {
        match self.file {
            None => out.write_all(&self.memory),
            Some(writer) => {
                let mut file = writer
                    .into_inner()
                    .map_err(io::IntoInnerError::into_error)?;
                file.seek(SeekFrom::Start(0))?;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = file.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    out.write_all(&buf[..n])?;
                }
            }
        }
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(file) = self.file.as_mut() {
            return file.write(buf);
        }
        if self.memory.len() + buf.len() <= IN_MEMORY {
            self.memory.extend_from_slice(buf);
            return Ok(buf.len());
        }
        // Spill: what is in memory goes first, then everything else.
        let mut file = io::BufWriter::with_capacity(256 * 1024, tempfile::tempfile()?);
        file.write_all(&self.memory)?;
        self.memory = Vec::new();
        file.write_all(buf)?;
        self.file = Some(file);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_back_in_order_whether_spilled_or_not() {
        let mut small = Spool::default();
        small.write_all(b"abc").unwrap();
        let mut out = Vec::new();
        small.copy_into(&mut out).unwrap();
        assert_eq!(out, b"abc");

        let mut big = Spool::default();
        let chunk: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        for _ in 0..10 {
            big.write_all(&chunk).unwrap();
        }
        assert!(big.file.is_some());
        let mut out = Vec::new();
        big.copy_into(&mut out).unwrap();
        assert_eq!(out.len(), 10 << 20);
        assert!(out.chunks(1 << 20).all(|c| c == chunk.as_slice()));
    }
}
