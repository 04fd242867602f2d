//! Small helpers for the length-checked encodings of this module.

/// Reads fixed-size fields from a byte slice, never panicking.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

/// The input ended before a field did, or had bytes left over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Truncated;

impl std::fmt::Display for Truncated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wrong length")
    }
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], Truncated> {
        if self.bytes.len() < len {
            return Err(Truncated);
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Truncated> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Truncated> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A field with a u32 length prefix.
    pub(crate) fn vec32(&mut self) -> Result<&'a [u8], Truncated> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// A field with a u8 length prefix.
    pub(crate) fn vec8(&mut self) -> Result<&'a [u8], Truncated> {
        let len = self.u8()? as usize;
        self.take(len)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn finish(self) -> Result<(), Truncated> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(Truncated)
        }
    }
}

pub(crate) fn put_vec32(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

pub(crate) fn put_vec8(out: &mut Vec<u8>, bytes: &[u8]) {
    debug_assert!(bytes.len() <= u8::MAX as usize);
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}
