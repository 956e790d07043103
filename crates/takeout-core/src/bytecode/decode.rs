//! Instruction decoding, mirroring `dis._unpack_opargs`.

use super::{BytecodeError, Instruction, OpcodeTable, Role};

/// Decode `code` into instructions the way `dis.get_instructions` does.
pub fn decode(code: &[u8], table: &OpcodeTable) -> Result<Vec<Instruction>, BytecodeError> {
    decode_named(code, table, "<bytecode>")
}

/// [`decode`], naming the code object in errors.
pub(crate) fn decode_named(
    code: &[u8],
    table: &OpcodeTable,
    qualname: &str,
) -> Result<Vec<Instruction>, BytecodeError> {
    if !code.len().is_multiple_of(2) {
        return Err(BytecodeError::OddLength {
            qualname: qualname.to_owned(),
            len: code.len(),
        });
    }
    let mut out = Vec::with_capacity(code.len() / 2);
    let mut extended: u32 = 0;
    let mut units = code.chunks_exact(2).enumerate();
    while let Some((index, unit)) = units.next() {
        let (op, byte) = (unit[0], unit[1]);
        let arg = if table.has_arg(op) {
            let arg = u32::from(byte) | extended;
            // Bits shifted past 32 are dropped, as in the interpreter's 32-bit `oparg`; dis
            // (unbounded ints) only differs beyond four EXTENDED_ARGs, which CPython never emits.
            extended = if table.role(op) == Role::ExtendedArg {
                arg << 8
            } else {
                0
            };
            Some(arg)
        } else {
            extended = 0;
            None
        };
        out.push(Instruction {
            offset: 2 * index,
            opcode: op,
            arg,
        });
        // Truncated trailing caches end the loop quietly, as they do in dis.
        for _ in 0..table.cache_entries(op) {
            if units.next().is_none() {
                break;
            }
        }
    }
    Ok(out)
}
