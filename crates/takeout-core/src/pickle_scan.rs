//! Pickle scanner: every module an unpickler will import when it loads a stream.
//!
//! A symbolic unpickler: it keeps a stack and memo of *shapes* (short strings, globals,
//! tuples of those, "something else"), never the objects, and skips payloads by length,
//! so a stream of any size is scanned in one pass without allocating its contents.
//! (TODO: implemented by the pickle-scanner work item.)

use thiserror::Error;

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

/// A global the unpickler resolves with `find_class(module, name)`, which imports `module`.
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
    #[error("opcode `{opcode}` at byte {offset} has a malformed argument: {reason}")]
    BadArgument {
        opcode: &'static str,
        offset: usize,
        reason: String,
    },
    #[error("memo key {key} is read at byte {offset} before it was stored")]
    MissingMemo { key: u64, offset: usize },
    #[error("the pickle stream has no STOP opcode")]
    NoStop,
}

/// Scan one pickle stream (up to its `STOP`).
pub fn scan(data: &[u8]) -> Result<PickleScan, PickleError> {
    let _ = data;
    todo!("pickle scanner")
}
