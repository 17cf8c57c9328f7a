//! The zero-copy bencode decoder: recursive descent with a depth limit and an item budget.

use super::value::{Dict, Value, ValueKind};

/// The nesting depth [`DecodeLimits::default`] allows.
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// The number of values plus dictionary keys [`DecodeLimits::default`] allows.
pub const DEFAULT_MAX_ITEMS: usize = 1 << 20;
/// No limits value can raise the depth above this: the decoder recurses once per level.
pub const HARD_MAX_DEPTH: usize = 512;

/// Longest dictionary key quoted in a [`DecodeError::DuplicateKey`].
const QUOTED_KEY_MAX: usize = 64;

/// Caps applied while decoding untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Deepest nesting of lists and dictionaries (the top level container is depth 1). Values
    /// above [`HARD_MAX_DEPTH`] are treated as [`HARD_MAX_DEPTH`].
    pub max_depth: usize,
    /// Most values (including dictionary keys) in one input.
    pub max_items: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_items: DEFAULT_MAX_ITEMS,
        }
    }
}

/// Why input is not valid bencode. `offset` is the byte position in the input where the problem
/// was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("input ends at byte {offset} inside a value")]
    UnexpectedEnd { offset: usize },
    #[error("unexpected byte {byte:#04x} at offset {offset} where a value should start")]
    UnexpectedByte { offset: usize, byte: u8 },
    #[error("integer at offset {offset} has no digits")]
    EmptyInteger { offset: usize },
    #[error("number at offset {offset} has a leading zero")]
    LeadingZero { offset: usize },
    #[error("integer at offset {offset} is negative zero")]
    NegativeZero { offset: usize },
    #[error("integer at offset {offset} does not fit in 64 bits")]
    IntegerOverflow { offset: usize },
    #[error("byte {byte:#04x} at offset {offset} is not a digit")]
    NotADigit { offset: usize, byte: u8 },
    #[error("byte string at offset {offset} declares {declared} bytes but {remaining} remain")]
    StringPastEnd {
        offset: usize,
        declared: u64,
        remaining: usize,
    },
    #[error("nesting deeper than {max_depth} at offset {offset}")]
    TooDeep { offset: usize, max_depth: usize },
    #[error("more than {max_items} values, at offset {offset}")]
    TooManyItems { offset: usize, max_items: usize },
    #[error("dictionary key at offset {offset} is not a byte string (starts with {byte:#04x})")]
    KeyNotString { offset: usize, byte: u8 },
    #[error("dictionary key {key:?} at offset {offset} appears twice")]
    DuplicateKey { offset: usize, key: String },
    #[error("{count} bytes of trailing data after the value, at offset {offset}")]
    TrailingBytes { offset: usize, count: usize },
}

impl DecodeError {
    /// The byte position in the input where decoding failed.
    pub fn offset(&self) -> usize {
        match *self {
            DecodeError::UnexpectedEnd { offset }
            | DecodeError::UnexpectedByte { offset, .. }
            | DecodeError::EmptyInteger { offset }
            | DecodeError::LeadingZero { offset }
            | DecodeError::NegativeZero { offset }
            | DecodeError::IntegerOverflow { offset }
            | DecodeError::NotADigit { offset, .. }
            | DecodeError::StringPastEnd { offset, .. }
            | DecodeError::TooDeep { offset, .. }
            | DecodeError::TooManyItems { offset, .. }
            | DecodeError::KeyNotString { offset, .. }
            | DecodeError::DuplicateKey { offset, .. }
            | DecodeError::TrailingBytes { offset, .. } => offset,
        }
    }
}

impl DecodeLimits {
    /// Decodes exactly one value; bytes after it are an error.
    pub fn decode<'a>(&self, input: &'a [u8]) -> Result<Value<'a>, DecodeError> {
        let (value, used) = self.decode_prefix(input)?;
        if used < input.len() {
            return Err(DecodeError::TrailingBytes {
                offset: used,
                count: input.len() - used,
            });
        }
        Ok(value)
    }

    /// Decodes one value at the start of `input` and returns it with the number of bytes it
    /// used; whatever follows is left alone (BEP 9 puts raw metadata after a dictionary).
    pub fn decode_prefix<'a>(&self, input: &'a [u8]) -> Result<(Value<'a>, usize), DecodeError> {
        let mut decoder = Decoder {
            input,
            pos: 0,
            depth: 0,
            items: 0,
            max_depth: self.max_depth.min(HARD_MAX_DEPTH),
            max_items: self.max_items,
        };
        let value = decoder.value()?;
        Ok((value, decoder.pos))
    }
}

/// [`DecodeLimits::decode`] with the default limits.
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    DecodeLimits::default().decode(input)
}

/// [`DecodeLimits::decode_prefix`] with the default limits.
pub fn decode_prefix(input: &[u8]) -> Result<(Value<'_>, usize), DecodeError> {
    DecodeLimits::default().decode_prefix(input)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    depth: usize,
    items: usize,
    max_depth: usize,
    max_items: usize,
}

impl<'a> Decoder<'a> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn next_byte(&mut self) -> Result<u8, DecodeError> {
        let byte = self
            .peek()
            .ok_or(DecodeError::UnexpectedEnd { offset: self.pos })?;
        self.pos += 1;
        Ok(byte)
    }

    fn count_item(&mut self) -> Result<(), DecodeError> {
        if self.items >= self.max_items {
            return Err(DecodeError::TooManyItems {
                offset: self.pos,
                max_items: self.max_items,
            });
        }
        self.items += 1;
        Ok(())
    }

    fn value(&mut self) -> Result<Value<'a>, DecodeError> {
        let start = self.pos;
        let kind = match self.peek() {
            None => return Err(DecodeError::UnexpectedEnd { offset: start }),
            Some(b'i') => {
                self.count_item()?;
                ValueKind::Int(self.int()?)
            }
            Some(b'0'..=b'9') => {
                self.count_item()?;
                ValueKind::Bytes(self.bytes()?)
            }
            Some(b'l') => ValueKind::List(self.container(Self::list_body)?),
            Some(b'd') => ValueKind::Dict(self.container(Self::dict_body)?),
            Some(byte) => {
                return Err(DecodeError::UnexpectedByte {
                    offset: start,
                    byte,
                })
            }
        };
        Ok(Value::new(kind, &self.input[start..self.pos], start))
    }

    /// Counts the container, checks the depth, skips its opening byte and runs `body`, which
    /// consumes everything up to and including the closing `e`.
    fn container<T>(
        &mut self,
        body: fn(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        self.count_item()?;
        if self.depth >= self.max_depth {
            return Err(DecodeError::TooDeep {
                offset: self.pos,
                max_depth: self.max_depth,
            });
        }
        self.depth += 1;
        self.pos += 1;
        let out = body(self)?;
        self.depth -= 1;
        Ok(out)
    }

    fn list_body(&mut self) -> Result<Vec<Value<'a>>, DecodeError> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None => return Err(DecodeError::UnexpectedEnd { offset: self.pos }),
                Some(b'e') => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(_) => items.push(self.value()?),
            }
        }
    }

    fn dict_body(&mut self) -> Result<Dict<'a>, DecodeError> {
        let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
        let mut canonical = true;
        loop {
            let key_offset = self.pos;
            match self.peek() {
                None => return Err(DecodeError::UnexpectedEnd { offset: key_offset }),
                Some(b'e') => {
                    self.pos += 1;
                    break;
                }
                Some(b'0'..=b'9') => {}
                Some(byte) => {
                    return Err(DecodeError::KeyNotString {
                        offset: key_offset,
                        byte,
                    })
                }
            }
            self.count_item()?;
            let key = self.bytes()?;
            if let Some((previous, _)) = entries.last() {
                match (*previous).cmp(key) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => return Err(duplicate(key, key_offset)),
                    std::cmp::Ordering::Greater => canonical = false,
                }
            }
            let value = self.value()?;
            entries.push((key, value));
        }
        if !canonical {
            check_unique_keys(&entries)?;
        }
        Ok(Dict::new(entries, canonical))
    }

    /// `i<digits>e` with an optional `-`; no leading zeros, no `-0`, no empty digits.
    fn int(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        self.pos += 1; // 'i'
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let magnitude = self.digits(start)?;
        let digit_count = self.pos - digits_start;
        match self.next_byte()? {
            b'e' => {}
            byte => {
                return Err(DecodeError::NotADigit {
                    offset: self.pos - 1,
                    byte,
                })
            }
        }
        if digit_count == 0 {
            return Err(DecodeError::EmptyInteger { offset: start });
        }
        if digit_count > 1 && self.input[digits_start] == b'0' {
            return Err(DecodeError::LeadingZero { offset: start });
        }
        if negative && magnitude == 0 {
            return Err(DecodeError::NegativeZero { offset: start });
        }
        let signed = if negative {
            -i128::from(magnitude)
        } else {
            i128::from(magnitude)
        };
        i64::try_from(signed).map_err(|_| DecodeError::IntegerOverflow { offset: start })
    }

    /// `<length>:<bytes>`; the length is checked against the remaining input before slicing.
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let len = self.digits(start)?;
        let digit_count = self.pos - start;
        match self.next_byte()? {
            b':' => {}
            byte => {
                return Err(DecodeError::NotADigit {
                    offset: self.pos - 1,
                    byte,
                })
            }
        }
        if digit_count > 1 && self.input[start] == b'0' {
            return Err(DecodeError::LeadingZero { offset: start });
        }
        let remaining = self.input.len() - self.pos;
        let Some(len) = usize::try_from(len).ok().filter(|&len| len <= remaining) else {
            return Err(DecodeError::StringPastEnd {
                offset: start,
                declared: len,
                remaining,
            });
        };
        let bytes = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    /// Reads ASCII digits as a u64 (possibly none); `value_start` is reported on overflow.
    fn digits(&mut self, value_start: usize) -> Result<u64, DecodeError> {
        let mut n: u64 = 0;
        while let Some(byte @ b'0'..=b'9') = self.peek() {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(byte - b'0')))
                .ok_or(DecodeError::IntegerOverflow {
                    offset: value_start,
                })?;
            self.pos += 1;
        }
        Ok(n)
    }
}

/// Sorts a copy of the keys to find duplicates in a dictionary whose keys were out of order.
fn check_unique_keys(entries: &[(&[u8], Value<'_>)]) -> Result<(), DecodeError> {
    let mut keys: Vec<(&[u8], usize)> = entries
        .iter()
        .map(|(k, v)| (*k, v.offset() - encoded_key_len(k)))
        .collect();
    keys.sort_unstable();
    for pair in keys.windows(2) {
        if let [(a, _), (b, b_offset)] = pair {
            if a == b {
                return Err(duplicate(b, *b_offset));
            }
        }
    }
    Ok(())
}

fn encoded_key_len(key: &[u8]) -> usize {
    key.len().to_string().len() + 1 + key.len()
}

fn duplicate(key: &[u8], offset: usize) -> DecodeError {
    let shown = &key[..key.len().min(QUOTED_KEY_MAX)];
    DecodeError::DuplicateKey {
        offset,
        key: String::from_utf8_lossy(shown).into_owned(),
    }
}
