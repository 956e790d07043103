//! Pickle scanner: every module an unpickler will import when it loads a stream.
//!
//! A symbolic unpickler: it keeps a stack and memo of *shapes* (strings, globals, tuples
//! that start with a string, "something else"), never the objects, and skips payloads by
//! length, so a stream of any size is scanned in one pass without copying its contents.
//! Strings are kept as spans of the input and decoded only when a `STACK_GLOBAL` or a
//! cloudpickle reconstructor consumes them.
//!
//! The stack effect of every opcode follows `CPython`'s `_pickle.c` (marks live on their own
//! stack, values above the innermost mark are the only ones an opcode may pop), so a
//! stream the scanner accepts is one whose shape the unpickler accepts too.

mod memo;
mod opcodes;
mod text;

#[cfg(test)]
mod tests;

use thiserror::Error;

use self::memo::Memo;
use self::opcodes::Op;

/// How the stream names a global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefKind {
    /// `GLOBAL` (protocols 0-3): module and name as text lines.
    Global,
    /// `STACK_GLOBAL` (protocol 4+): module and name popped from the stack.
    StackGlobal,
    /// `INST` (protocol 0): builds an instance of module.name.
    Inst,
}

impl RefKind {
    /// The opcode name, as `pickletools` spells it.
    pub fn opcode_name(self) -> &'static str {
        match self {
            Self::Global => "GLOBAL",
            Self::StackGlobal => "STACK_GLOBAL",
            Self::Inst => "INST",
        }
    }
}

/// A global the unpickler resolves with `find_class(module, name)`, which imports `module`.
///
/// Names are reported as the stream spells them: for protocols below 3 the unpickler also
/// maps Python 2 names (`__builtin__`, `copy_reg`, ...) through `_compat_pickle`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalRef {
    pub module: String,
    pub name: String,
    pub kind: RefKind,
    /// Byte offset of the opcode that names it.
    pub offset: usize,
}

/// A module that cloudpickle's reconstructors bring in by name at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubimportRef {
    pub module: String,
    /// `true` for `dynamic_subimport(name, vars)`: the module travels by value and is
    /// *not* imported; `false` for `subimport(name)`, which imports it.
    pub dynamic: bool,
    /// Byte offset of the `REDUCE` that calls the reconstructor.
    pub offset: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PickleScan {
    /// Protocol from the `PROTO` opcode (0 when absent).
    pub protocol: u8,
    /// In stream order, duplicates kept (each with its own offset).
    pub globals: Vec<GlobalRef>,
    pub subimports: Vec<SubimportRef>,
    /// `EXT1/EXT2/EXT4` codes: globals named through the copyreg extension registry.
    pub extension_codes: Vec<u32>,
    /// Number of `NEXT_BUFFER` opcodes (protocol 5 out-of-band buffers).
    pub out_of_band_buffers: usize,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PickleError {
    #[error("the pickle stream ends inside opcode `{opcode}` at byte {offset}")]
    Truncated { opcode: &'static str, offset: usize },
    #[error("unknown pickle opcode 0x{byte:02x} at byte {offset}")]
    UnknownOpcode { byte: u8, offset: usize },
    #[error("opcode `{opcode}` at byte {offset} needs more values than the stack holds")]
    StackUnderflow { opcode: &'static str, offset: usize },
    #[error("opcode `{opcode}` at byte {offset} needs a MARK but the stack holds none")]
    MissingMark { opcode: &'static str, offset: usize },
    #[error("opcode `{opcode}` at byte {offset} has a malformed argument: {reason}")]
    BadArgument {
        opcode: &'static str,
        offset: usize,
        reason: String,
    },
    #[error("memo key {key} is read at byte {offset} before it was stored")]
    MissingMemo { key: u64, offset: usize },
    #[error("the pickle stream ends without a STOP opcode")]
    NoStop,
}

/// Longest module or name string taken from the stack. Memo reads can hand the same string
/// to any number of `STACK_GLOBAL`s, each of which copies it into the result, so an
/// unbounded length would let a small stream produce an arbitrarily large scan.
pub const MAX_STACK_NAME_LEN: usize = 1024;

/// Highest protocol the scanner (and `CPython`'s unpickler) understands.
const HIGHEST_PROTOCOL: u8 = 5;

/// Scan one pickle stream (up to its `STOP`).
pub fn scan(data: &[u8]) -> Result<PickleScan, PickleError> {
    Scanner::new(data).run()
}

/// How the bytes of a string span turn into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Latin1,
    /// The body of a quoted `STRING` line.
    PythonEscape,
    /// A `UNICODE` line.
    RawUnicodeEscape,
}

/// A string on the stack: where its encoded bytes are in the input.
#[derive(Debug, Clone, Copy)]
struct Text {
    start: usize,
    /// Saturates at `u32::MAX`: only lengths up to [`MAX_STACK_NAME_LEN`] are ever read
    /// back, and the narrower field keeps a stack entry at 24 bytes.
    len: u32,
    encoding: Encoding,
}

impl Text {
    fn new(start: usize, len: usize, encoding: Encoding) -> Self {
        Self {
            start,
            len: u32::try_from(len).unwrap_or(u32::MAX),
            encoding,
        }
    }
}

/// What the scanner remembers about one stack or memo value.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// A value the scan never needs to tell apart: numbers, bytes, containers, instances.
    Other,
    Str(Text),
    /// `globals[index]` of the scan result.
    Global(usize),
    /// A tuple whose first item is this string (the argument tuple of `subimport`).
    TupleOfStr(Text),
}

/// What `pop_mark` removed: all a caller needs to know about the values above a mark.
struct MarkedItems {
    count: usize,
    first: Option<Shape>,
}

/// Whether `module` is cloudpickle's, including the copies vendored by other packages
/// (`joblib.externals.cloudpickle`, `ray.cloudpickle`, ...) that pickle modules the same way.
fn is_cloudpickle_module(module: &str) -> bool {
    module.split('.').any(|part| part == "cloudpickle")
}

struct Scanner<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset and opcode of the instruction being decoded, for error messages.
    offset: usize,
    op: Op,
    stack: Vec<Shape>,
    /// Stack lengths at each open MARK, innermost last (`CPython`'s metastack).
    marks: Vec<usize>,
    memo: Memo<Shape>,
    out: PickleScan,
}

impl<'a> Scanner<'a> {
    fn new(data: &'a [u8]) -> Self {
        Scanner {
            data,
            pos: 0,
            offset: 0,
            op: Op::STOP,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Memo::new(),
            out: PickleScan::default(),
        }
    }

    fn run(mut self) -> Result<PickleScan, PickleError> {
        self.run_to_stop()?;
        // The unpickler returns the value STOP pops; an empty stack is an error.
        self.pop()?;
        Ok(self.out)
    }

    /// Apply every opcode up to (not including) the effect of the first `STOP`.
    fn run_to_stop(&mut self) -> Result<(), PickleError> {
        loop {
            let Some(&byte) = self.data.get(self.pos) else {
                return Err(PickleError::NoStop);
            };
            self.offset = self.pos;
            self.pos += 1;
            self.op = Op::from_byte(byte).ok_or(PickleError::UnknownOpcode {
                byte,
                offset: self.offset,
            })?;
            if self.op == Op::STOP {
                return Ok(());
            }
            self.step()?;
        }
    }

    /// Decode the current opcode's argument and apply its stack effect.
    #[allow(
        clippy::match_same_arms,
        reason = "one arm per opcode family, as pickletools lists them"
    )]
    fn step(&mut self) -> Result<(), PickleError> {
        match self.op {
            Op::STOP => unreachable!("STOP ends the scan loop"),

            Op::INT | Op::LONG | Op::FLOAT | Op::PERSID => {
                self.line()?;
                self.push(Shape::Other);
            }
            Op::BININT => self.fixed_push(4)?,
            Op::BININT1 => self.fixed_push(1)?,
            Op::BININT2 => self.fixed_push(2)?,
            Op::BINFLOAT => self.fixed_push(8)?,
            Op::NONE | Op::NEWTRUE | Op::NEWFALSE => self.push(Shape::Other),
            Op::LONG1 => {
                let n = self.u8_arg()?;
                self.payload(u64::from(n))?;
                self.push(Shape::Other);
            }
            Op::LONG4 => {
                let n = self.i32_arg()?;
                let n = self.non_negative(n)?;
                self.payload(n)?;
                self.push(Shape::Other);
            }

            Op::STRING => {
                let (start, len) = self.line_span()?;
                let body = &self.data[start..start + len];
                let quoted =
                    len >= 2 && (body[0] == b'\'' || body[0] == b'"') && body[len - 1] == body[0];
                if !quoted {
                    return Err(self.bad_argument("the STRING argument must be quoted"));
                }
                self.push(Shape::Str(Text::new(
                    start + 1,
                    len - 2,
                    Encoding::PythonEscape,
                )));
            }
            Op::UNICODE => {
                let (start, len) = self.line_span()?;
                self.push(Shape::Str(Text::new(
                    start,
                    len,
                    Encoding::RawUnicodeEscape,
                )));
            }
            Op::BINSTRING => {
                let n = self.i32_arg()?;
                let n = self.non_negative(n)?;
                self.string_payload(n, Encoding::Latin1)?;
            }
            Op::SHORT_BINSTRING => {
                let n = self.u8_arg()?;
                self.string_payload(u64::from(n), Encoding::Latin1)?;
            }
            Op::SHORT_BINUNICODE => {
                let n = self.u8_arg()?;
                self.string_payload(u64::from(n), Encoding::Utf8)?;
            }
            Op::BINUNICODE => {
                let n = self.u32_arg()?;
                self.string_payload(u64::from(n), Encoding::Utf8)?;
            }
            Op::BINUNICODE8 => {
                let n = self.u64_arg()?;
                self.string_payload(n, Encoding::Utf8)?;
            }
            Op::SHORT_BINBYTES => {
                let n = self.u8_arg()?;
                self.payload(u64::from(n))?;
                self.push(Shape::Other);
            }
            Op::BINBYTES => {
                let n = self.u32_arg()?;
                self.payload(u64::from(n))?;
                self.push(Shape::Other);
            }
            Op::BINBYTES8 | Op::BYTEARRAY8 => {
                let n = self.u64_arg()?;
                self.payload(n)?;
                self.push(Shape::Other);
            }
            Op::NEXT_BUFFER => {
                self.out.out_of_band_buffers += 1;
                self.push(Shape::Other);
            }
            Op::READONLY_BUFFER => {
                self.top()?;
            }

            Op::EMPTY_LIST | Op::EMPTY_TUPLE | Op::EMPTY_DICT | Op::EMPTY_SET => {
                self.push(Shape::Other);
            }
            Op::APPEND => {
                self.pop()?;
                self.top()?;
            }
            Op::APPENDS | Op::ADDITEMS => {
                self.pop_mark()?;
                self.top()?;
            }
            Op::LIST | Op::FROZENSET => {
                self.pop_mark()?;
                self.push(Shape::Other);
            }
            Op::TUPLE => {
                let items = self.pop_mark()?;
                self.push(tuple_of(items.first));
            }
            Op::TUPLE1 | Op::TUPLE2 | Op::TUPLE3 => {
                let n = match self.op {
                    Op::TUPLE1 => 1,
                    Op::TUPLE2 => 2,
                    _ => 3,
                };
                let base = self
                    .stack
                    .len()
                    .checked_sub(n)
                    .filter(|&b| b >= self.fence());
                let Some(base) = base else {
                    return Err(self.underflow());
                };
                let tuple = tuple_of(Some(self.stack[base]));
                self.stack.truncate(base);
                self.push(tuple);
            }
            Op::DICT => {
                let items = self.pop_mark()?;
                self.even_items(items.count)?;
                self.push(Shape::Other);
            }
            Op::SETITEM => {
                self.pop()?;
                self.pop()?;
                self.top()?;
            }
            Op::SETITEMS => {
                let items = self.pop_mark()?;
                self.even_items(items.count)?;
                self.top()?;
            }

            Op::POP => {
                // CPython pops the innermost mark when it sits on top of the stack.
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop()?;
                }
            }
            Op::DUP => {
                let top = self.top()?;
                self.push(top);
            }
            Op::MARK => self.marks.push(self.stack.len()),
            Op::POP_MARK => {
                self.pop_mark()?;
            }

            Op::GET => {
                let key = self.decimal_line()?;
                self.memo_get(key)?;
            }
            Op::BINGET => {
                let key = self.u8_arg()?;
                self.memo_get(u64::from(key))?;
            }
            Op::LONG_BINGET => {
                let key = self.u32_arg()?;
                self.memo_get(u64::from(key))?;
            }
            Op::PUT => {
                let key = self.decimal_line()?;
                self.memo_put(key)?;
            }
            Op::BINPUT => {
                let key = self.u8_arg()?;
                self.memo_put(u64::from(key))?;
            }
            Op::LONG_BINPUT => {
                let key = self.u32_arg()?;
                self.memo_put(u64::from(key))?;
            }
            Op::MEMOIZE => {
                let key = self.memo.len() as u64;
                self.memo_put(key)?;
            }

            Op::EXT1 => {
                let code = self.u8_arg()?;
                self.extension(i64::from(code))?;
            }
            Op::EXT2 => {
                let code = self.u16_arg()?;
                self.extension(i64::from(code))?;
            }
            Op::EXT4 => {
                let code = self.i32_arg()?;
                self.extension(i64::from(code))?;
            }
            Op::GLOBAL => {
                let (module, name) = self.global_lines()?;
                let index = self.record_global(module, name, RefKind::Global);
                self.push(Shape::Global(index));
            }
            Op::INST => {
                let (module, name) = self.global_lines()?;
                self.pop_mark()?;
                self.record_global(module, name, RefKind::Inst);
                self.push(Shape::Other);
            }
            Op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Shape::Str(module), Shape::Str(name)) = (module, name) else {
                    return Err(self.bad_argument("module and name must both be strings"));
                };
                let module = self.decode_name(module, "module")?;
                let name = self.decode_name(name, "name")?;
                let index = self.record_global(module, name, RefKind::StackGlobal);
                self.push(Shape::Global(index));
            }
            Op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                self.check_subimport(callable, args)?;
                self.push(Shape::Other);
            }
            Op::BUILD => {
                self.pop()?;
                self.top()?;
            }
            Op::OBJ => {
                // The first value above the mark is the class to instantiate.
                if self.pop_mark()?.count == 0 {
                    return Err(self.underflow());
                }
                self.push(Shape::Other);
            }
            Op::NEWOBJ => {
                self.pop()?;
                self.pop()?;
                self.push(Shape::Other);
            }
            Op::NEWOBJ_EX => {
                self.pop()?;
                self.pop()?;
                self.pop()?;
                self.push(Shape::Other);
            }
            Op::BINPERSID => {
                self.pop()?;
                self.push(Shape::Other);
            }

            Op::PROTO => {
                let proto = self.u8_arg()?;
                if proto > HIGHEST_PROTOCOL {
                    return Err(self.bad_argument(format!("unsupported protocol {proto}")));
                }
                self.out.protocol = proto;
            }
            Op::FRAME => {
                // Frames only group opcodes for buffered reads; their content is scanned
                // like any other bytes, but a frame longer than the rest is a truncation.
                let n = self.u64_arg()?;
                if n > self.remaining() {
                    return Err(self.truncated());
                }
            }
        }
        Ok(())
    }

    // ── stack ────────────────────────────────────────────────────────────────────────────

    /// Start of the values the current opcode may touch (above the innermost mark).
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, shape: Shape) {
        self.stack.push(shape);
    }

    fn pop(&mut self) -> Result<Shape, PickleError> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow());
        }
        self.stack.pop().ok_or_else(|| self.underflow())
    }

    fn top(&self) -> Result<Shape, PickleError> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow());
        }
        self.stack.last().copied().ok_or_else(|| self.underflow())
    }

    /// Close the innermost mark, dropping the values above it.
    fn pop_mark(&mut self) -> Result<MarkedItems, PickleError> {
        let base = self.marks.pop().ok_or(PickleError::MissingMark {
            opcode: self.op.name(),
            offset: self.offset,
        })?;
        let items = MarkedItems {
            count: self.stack.len() - base,
            first: self.stack.get(base).copied(),
        };
        self.stack.truncate(base);
        Ok(items)
    }

    fn even_items(&self, count: usize) -> Result<(), PickleError> {
        if !count.is_multiple_of(2) {
            return Err(self.bad_argument("odd number of items between MARK and the opcode"));
        }
        Ok(())
    }

    // ── memo ─────────────────────────────────────────────────────────────────────────────

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        let shape = self.memo.get(key).ok_or(PickleError::MissingMemo {
            key,
            offset: self.offset,
        })?;
        self.push(shape);
        Ok(())
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    // ── globals ──────────────────────────────────────────────────────────────────────────

    fn record_global(&mut self, module: String, name: String, kind: RefKind) -> usize {
        self.out.globals.push(GlobalRef {
            module,
            name,
            kind,
            offset: self.offset,
        });
        self.out.globals.len() - 1
    }

    fn extension(&mut self, code: i64) -> Result<(), PickleError> {
        // copyreg reserves code 0 and the unpickler rejects it as a corrupt stream.
        let code = u32::try_from(code)
            .ok()
            .filter(|&c| c > 0)
            .ok_or_else(|| self.bad_argument(format!("extension code {code} is not positive")))?;
        self.out.extension_codes.push(code);
        self.push(Shape::Other);
        Ok(())
    }

    /// `GLOBAL`/`INST` arguments: two non-empty UTF-8 lines, as `CPython` reads them.
    fn global_lines(&mut self) -> Result<(String, String), PickleError> {
        let module = self.line()?;
        let name = self.line()?;
        let decode = |bytes: &[u8], what: &str| {
            if bytes.is_empty() {
                return Err(self.bad_argument(format!("the {what} line is empty")));
            }
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| self.bad_argument(format!("the {what} line is not UTF-8")))
        };
        Ok((decode(module, "module")?, decode(name, "name")?))
    }

    fn decode_name(&self, text: Text, what: &str) -> Result<String, PickleError> {
        let len = text.len as usize;
        if len > MAX_STACK_NAME_LEN {
            return Err(self.bad_argument(format!(
                "the {what} string is longer than the {MAX_STACK_NAME_LEN}-byte limit"
            )));
        }
        let bytes = &self.data[text.start..text.start + len];
        let decoded = match text.encoding {
            Encoding::Utf8 => std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| "it is not valid UTF-8"),
            Encoding::Latin1 => Ok(text::latin1(bytes)),
            Encoding::PythonEscape => text::python_string_escape(bytes),
            Encoding::RawUnicodeEscape => text::raw_unicode_escape(bytes),
        };
        decoded.map_err(|reason| self.bad_argument(format!("the {what} string: {reason}")))
    }

    /// `REDUCE` of cloudpickle's `subimport(name)` / `dynamic_subimport(name, vars)`.
    fn check_subimport(&mut self, callable: Shape, args: Shape) -> Result<(), PickleError> {
        let (Shape::Global(index), Shape::TupleOfStr(module)) = (callable, args) else {
            return Ok(());
        };
        let global = &self.out.globals[index];
        let dynamic = match global.name.as_str() {
            "subimport" => false,
            "dynamic_subimport" => true,
            _ => return Ok(()),
        };
        if !is_cloudpickle_module(&global.module) {
            return Ok(());
        }
        let module = self.decode_name(module, "module")?;
        self.out.subimports.push(SubimportRef {
            module,
            dynamic,
            offset: self.offset,
        });
        Ok(())
    }

    // ── arguments ────────────────────────────────────────────────────────────────────────

    fn remaining(&self) -> u64 {
        (self.data.len() - self.pos) as u64
    }

    /// The next `n` bytes, checked against the input before anything is allocated or read.
    fn take(&mut self, n: u64) -> Result<&'a [u8], PickleError> {
        if n > self.remaining() {
            return Err(self.truncated());
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.data[start..self.pos])
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let bytes = self.take(N as u64)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn fixed_push(&mut self, n: u64) -> Result<(), PickleError> {
        self.take(n)?;
        self.push(Shape::Other);
        Ok(())
    }

    fn u8_arg(&mut self) -> Result<u8, PickleError> {
        Ok(self.fixed::<1>()?[0])
    }

    fn u16_arg(&mut self) -> Result<u16, PickleError> {
        self.fixed().map(u16::from_le_bytes)
    }

    fn u32_arg(&mut self) -> Result<u32, PickleError> {
        self.fixed().map(u32::from_le_bytes)
    }

    fn i32_arg(&mut self) -> Result<i32, PickleError> {
        self.fixed().map(i32::from_le_bytes)
    }

    fn u64_arg(&mut self) -> Result<u64, PickleError> {
        self.fixed().map(u64::from_le_bytes)
    }

    fn non_negative(&self, n: i32) -> Result<u64, PickleError> {
        u64::try_from(n).map_err(|_| self.bad_argument(format!("negative byte count {n}")))
    }

    /// Skip a length-prefixed payload without looking at it.
    fn payload(&mut self, n: u64) -> Result<(), PickleError> {
        self.take(n).map(drop)
    }

    fn string_payload(&mut self, n: u64, encoding: Encoding) -> Result<(), PickleError> {
        let start = self.pos;
        let len = self.take(n)?.len();
        self.push(Shape::Str(Text::new(start, len, encoding)));
        Ok(())
    }

    /// A newline-terminated argument, without its newline; the unpickler treats a missing
    /// newline as truncation.
    fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let (start, len) = self.line_span()?;
        Ok(&self.data[start..start + len])
    }

    fn line_span(&mut self) -> Result<(usize, usize), PickleError> {
        let rest = &self.data[self.pos..];
        let len = memchr::memchr(b'\n', rest).ok_or_else(|| self.truncated())?;
        let start = self.pos;
        self.pos += len + 1;
        Ok((start, len))
    }

    /// A memo key line (`PUT`/`GET`): a decimal integer, as `repr(int)` writes it.
    fn decimal_line(&mut self) -> Result<u64, PickleError> {
        let line = self.line()?;
        let digits = line.trim_ascii();
        let digits = digits.strip_prefix(b"+").unwrap_or(digits);
        let valid = !digits.is_empty() && digits.iter().all(u8::is_ascii_digit);
        let key = valid
            .then(|| std::str::from_utf8(digits).ok()?.parse::<u64>().ok())
            .flatten();
        key.ok_or_else(|| {
            let shown = String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned();
            self.bad_argument(format!("{shown:?} is not a memo key"))
        })
    }

    // ── errors ───────────────────────────────────────────────────────────────────────────

    fn truncated(&self) -> PickleError {
        PickleError::Truncated {
            opcode: self.op.name(),
            offset: self.offset,
        }
    }

    fn underflow(&self) -> PickleError {
        PickleError::StackUnderflow {
            opcode: self.op.name(),
            offset: self.offset,
        }
    }

    fn bad_argument(&self, reason: impl Into<String>) -> PickleError {
        PickleError::BadArgument {
            opcode: self.op.name(),
            offset: self.offset,
            reason: reason.into(),
        }
    }
}

/// The shape of a tuple whose first item (if any) has shape `first`.
fn tuple_of(first: Option<Shape>) -> Shape {
    match first {
        Some(Shape::Str(text)) => Shape::TupleOfStr(text),
        _ => Shape::Other,
    }
}
