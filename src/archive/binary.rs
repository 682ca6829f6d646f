//! PostgreSQL's `COPY … (FORMAT binary)` stream to Arrow record batches and back.
//!
//! Written here because no crate maps the binary COPY format to Arrow for these types
//! (pgvector's `vector` in particular); the format is small and documented (COPY, "Binary
//! Format"; each type's `send` function): a signature, flags and an extension area, then
//! per tuple an int16 field count and per field an int32 length (-1 = NULL) and the bytes;
//! an int16 -1 ends the stream. Pure: bytes in, batches out.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, FixedSizeBinaryBuilder,
    FixedSizeListBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;

use super::columns::PgKind;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// 2000-01-01 (PostgreSQL's epoch) in days and microseconds since 1970-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("malformed COPY stream: {0}")]
    Malformed(String),
    #[error("column {column}: {message}")]
    Value { column: String, message: String },
    #[error("{0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// Decodes a binary COPY stream, fed in chunks of any size, into batches of `schema`.
pub struct CopyDecoder {
    kinds: Vec<PgKind>,
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    tuples: Tuples,
    buffered: usize,
}

impl CopyDecoder {
    pub fn new(schema: SchemaRef, kinds: Vec<PgKind>) -> CopyDecoder {
        let builders = kinds.iter().map(|k| ColumnBuilder::new(*k)).collect();
        CopyDecoder {
            kinds,
            schema,
            builders,
            tuples: Tuples::default(),
            buffered: 0,
        }
    }

    /// Rows decoded and not yet taken as a batch.
    pub fn buffered_rows(&self) -> usize {
        self.buffered
    }

    /// Whether the end-of-data marker was read.
    pub fn ended(&self) -> bool {
        self.tuples.ended
    }

    /// Decodes every complete tuple of what has arrived; an incomplete tail waits for the
    /// next chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), BinaryError> {
        let ncols = self.kinds.len();
        self.tuples.feed(chunk, ncols, |tuple| {
            decode_tuple(tuple, &self.kinds, &mut self.builders, &self.schema)?;
            self.buffered += 1;
            Ok(())
        })
    }

    /// The rows decoded so far as one batch (empty when there are none).
    pub fn take_batch(&mut self) -> Result<RecordBatch, BinaryError> {
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect();
        self.buffered = 0;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// Checks that the stream ended where it should.
    pub fn finish(&self) -> Result<(), BinaryError> {
        self.tuples.finish()
    }
}

/// Splits a binary COPY stream, fed in chunks of any size, into its tuples: the header
/// skipped, an incomplete tail kept for the next chunk, nothing allowed after the end marker.
#[derive(Default)]
struct Tuples {
    pending: Vec<u8>,
    header_done: bool,
    ended: bool,
}

impl Tuples {
    /// Calls `each` with every complete tuple of what has arrived.
    fn feed(
        &mut self,
        chunk: &[u8],
        ncols: usize,
        mut each: impl FnMut(&[u8]) -> Result<(), BinaryError>,
    ) -> Result<(), BinaryError> {
        self.pending.extend_from_slice(chunk);
        let mut pos = 0;
        if !self.header_done {
            match header_len(&self.pending)? {
                Some(n) => {
                    pos = n;
                    self.header_done = true;
                }
                None => return Ok(()),
            }
        }
        while !self.ended {
            let Some(len) = tuple_len(&self.pending[pos..], ncols)? else {
                break;
            };
            if len == 2 {
                self.ended = true;
            } else {
                each(&self.pending[pos..pos + len])?;
            }
            pos += len;
        }
        if self.ended && pos < self.pending.len() {
            return Err(BinaryError::Malformed("data after the end marker".into()));
        }
        self.pending.drain(..pos);
        Ok(())
    }

    fn finish(&self) -> Result<(), BinaryError> {
        if !self.ended || !self.pending.is_empty() {
            return Err(BinaryError::Malformed(
                "the stream ended before its end marker".into(),
            ));
        }
        Ok(())
    }
}

/// An order-independent digest of a binary COPY stream's tuples: the sum, modulo 2^256, of
/// each tuple's SHA-256 (a multiset hash). Two streams of the same tuples in any order have
/// the same digest. Citus's COPY of a distributed table sends its shards' rows in whatever
/// order the shards answer, so a restore reads its rows back in another order than it sent
/// them. Fed chunks of any size.
pub struct RowSetDigest {
    ncols: usize,
    tuples: Tuples,
    rows: u64,
    /// The sum, as four 64-bit limbs, least significant first.
    sum: [u64; 4],
}

impl RowSetDigest {
    pub fn new(ncols: usize) -> RowSetDigest {
        RowSetDigest {
            ncols,
            tuples: Tuples::default(),
            rows: 0,
            sum: [0; 4],
        }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), BinaryError> {
        use sha2::{Digest, Sha256};
        let (sum, rows) = (&mut self.sum, &mut self.rows);
        self.tuples.feed(chunk, self.ncols, |tuple| {
            add(sum, &Sha256::digest(tuple));
            *rows += 1;
            Ok(())
        })
    }

    /// (rows, digest as hex) once the end marker has arrived.
    pub fn finish(&self) -> Result<(u64, String), BinaryError> {
        self.tuples.finish()?;
        let hex: String = self.sum.iter().rev().map(|l| format!("{l:016x}")).collect();
        Ok((self.rows, hex))
    }
}

/// `sum += h` modulo 2^256, `sum` as four 64-bit limbs, least significant first.
fn add(sum: &mut [u64; 4], h: &[u8]) {
    let mut carry = 0u128;
    for (i, limb) in sum.iter_mut().enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&h[i * 8..i * 8 + 8]);
        let v = *limb as u128 + u64::from_le_bytes(word) as u128 + carry;
        *limb = v as u64;
        carry = v >> 64;
    }
}

/// The header's length once it has all arrived.
fn header_len(b: &[u8]) -> Result<Option<usize>, BinaryError> {
    if b.len() < 19 {
        return Ok(None);
    }
    if &b[..11] != SIGNATURE {
        return Err(BinaryError::Malformed("not a binary COPY signature".into()));
    }
    let flags = be_u32(&b[11..15]);
    if flags & (1 << 16) != 0 {
        return Err(BinaryError::Malformed("OIDs included".into()));
    }
    let ext = be_u32(&b[15..19]) as usize;
    Ok((b.len() >= 19 + ext).then_some(19 + ext))
}

/// The length of the tuple at the start of `b` once it has all arrived (2 for the end
/// marker).
fn tuple_len(b: &[u8], ncols: usize) -> Result<Option<usize>, BinaryError> {
    if b.len() < 2 {
        return Ok(None);
    }
    let n = i16::from_be_bytes([b[0], b[1]]);
    if n == -1 {
        return Ok(Some(2));
    }
    if n as usize != ncols {
        return Err(BinaryError::Malformed(format!(
            "a tuple of {n} fields where {ncols} were expected"
        )));
    }
    let mut pos = 2;
    for _ in 0..ncols {
        if b.len() < pos + 4 {
            return Ok(None);
        }
        let len = i32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]);
        pos += 4;
        if len > 0 {
            pos += len as usize;
        }
    }
    Ok((b.len() >= pos).then_some(pos))
}

fn decode_tuple(
    t: &[u8],
    kinds: &[PgKind],
    builders: &mut [ColumnBuilder],
    schema: &SchemaRef,
) -> Result<(), BinaryError> {
    let mut pos = 2;
    for (i, (kind, builder)) in kinds.iter().zip(builders.iter_mut()).enumerate() {
        let len = i32::from_be_bytes([t[pos], t[pos + 1], t[pos + 2], t[pos + 3]]);
        pos += 4;
        if len < 0 {
            builder.append_null();
            continue;
        }
        let v = &t[pos..pos + len as usize];
        pos += len as usize;
        builder
            .append(*kind, v)
            .map_err(|message| BinaryError::Value {
                column: schema.field(i).name().clone(),
                message,
            })?;
    }
    Ok(())
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn fixed<const N: usize>(v: &[u8]) -> Result<[u8; N], String> {
    v.try_into()
        .map_err(|_| format!("{} byte(s) where {N} were expected", v.len()))
}

/// PostgreSQL's ±infinity (the type's extreme values) stay the extremes in Arrow, so they
/// come back as infinity.
fn shift_i32(v: i32, by: i32) -> Result<i32, String> {
    if v == i32::MAX || v == i32::MIN {
        return Ok(v);
    }
    v.checked_add(by)
        .ok_or_else(|| "date out of range".to_string())
}

fn shift_i64(v: i64, by: i64) -> Result<i64, String> {
    if v == i64::MAX || v == i64::MIN {
        return Ok(v);
    }
    v.checked_add(by)
        .ok_or_else(|| "timestamp out of range".to_string())
}

enum ColumnBuilder {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Text(StringBuilder),
    Bin(BinaryBuilder),
    Uuid(FixedSizeBinaryBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder, Option<&'static str>),
    Vector(FixedSizeListBuilder<Float32Builder>, u16),
}

impl ColumnBuilder {
    fn new(kind: PgKind) -> ColumnBuilder {
        match kind {
            PgKind::Bool => ColumnBuilder::Bool(BooleanBuilder::new()),
            PgKind::Int2 => ColumnBuilder::I16(Int16Builder::new()),
            PgKind::Int4 => ColumnBuilder::I32(Int32Builder::new()),
            PgKind::Int8 => ColumnBuilder::I64(Int64Builder::new()),
            PgKind::Float4 => ColumnBuilder::F32(Float32Builder::new()),
            PgKind::Float8 => ColumnBuilder::F64(Float64Builder::new()),
            PgKind::Text | PgKind::Json | PgKind::Jsonb => {
                ColumnBuilder::Text(StringBuilder::new())
            }
            PgKind::Bytea => ColumnBuilder::Bin(BinaryBuilder::new()),
            PgKind::Uuid => ColumnBuilder::Uuid(FixedSizeBinaryBuilder::new(16)),
            PgKind::Date => ColumnBuilder::Date(Date32Builder::new()),
            PgKind::Timestamp => ColumnBuilder::Ts(TimestampMicrosecondBuilder::new(), None),
            PgKind::Timestamptz => {
                ColumnBuilder::Ts(TimestampMicrosecondBuilder::new(), Some("UTC"))
            }
            PgKind::Vector { dim } => ColumnBuilder::Vector(
                FixedSizeListBuilder::new(Float32Builder::new(), i32::from(dim)).with_field(
                    Arc::new(arrow_schema::Field::new(
                        "item",
                        arrow_schema::DataType::Float32,
                        false,
                    )),
                ),
                dim,
            ),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::I16(b) => b.append_null(),
            ColumnBuilder::I32(b) => b.append_null(),
            ColumnBuilder::I64(b) => b.append_null(),
            ColumnBuilder::F32(b) => b.append_null(),
            ColumnBuilder::F64(b) => b.append_null(),
            ColumnBuilder::Text(b) => b.append_null(),
            ColumnBuilder::Bin(b) => b.append_null(),
            ColumnBuilder::Uuid(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Ts(b, _) => b.append_null(),
            ColumnBuilder::Vector(b, dim) => {
                // A null list still occupies its slots in the child.
                for _ in 0..*dim {
                    b.values().append_value(0.0);
                }
                b.append(false);
            }
        }
    }

    fn append(&mut self, kind: PgKind, v: &[u8]) -> Result<(), String> {
        match self {
            ColumnBuilder::Bool(b) => b.append_value(fixed::<1>(v)?[0] != 0),
            ColumnBuilder::I16(b) => b.append_value(i16::from_be_bytes(fixed(v)?)),
            ColumnBuilder::I32(b) => b.append_value(i32::from_be_bytes(fixed(v)?)),
            ColumnBuilder::I64(b) => b.append_value(i64::from_be_bytes(fixed(v)?)),
            ColumnBuilder::F32(b) => b.append_value(f32::from_be_bytes(fixed(v)?)),
            ColumnBuilder::F64(b) => b.append_value(f64::from_be_bytes(fixed(v)?)),
            ColumnBuilder::Text(b) => {
                let text = match kind {
                    // jsonb's send format: a version byte (1), then the JSON text.
                    PgKind::Jsonb => match v.split_first() {
                        Some((1, rest)) => rest,
                        _ => return Err("unknown jsonb binary version".into()),
                    },
                    _ => v,
                };
                b.append_value(std::str::from_utf8(text).map_err(|e| format!("not UTF-8: {e}"))?)
            }
            ColumnBuilder::Bin(b) => b.append_value(v),
            ColumnBuilder::Uuid(b) => b.append_value(v).map_err(|e| e.to_string())?,
            ColumnBuilder::Date(b) => {
                b.append_value(shift_i32(i32::from_be_bytes(fixed(v)?), PG_EPOCH_DAYS)?)
            }
            ColumnBuilder::Ts(b, _) => {
                b.append_value(shift_i64(i64::from_be_bytes(fixed(v)?), PG_EPOCH_MICROS)?)
            }
            ColumnBuilder::Vector(b, dim) => {
                // vector_send: int16 dim, int16 unused, dim float4s.
                if v.len() < 4 {
                    return Err("truncated vector".into());
                }
                let n = u16::from_be_bytes([v[0], v[1]]);
                if n != *dim || v.len() != 4 + 4 * usize::from(n) {
                    return Err(format!(
                        "a vector of {n} dimensions where {dim} were expected"
                    ));
                }
                let values = b.values();
                for f in v[4..].chunks_exact(4) {
                    values.append_value(f32::from_be_bytes([f[0], f[1], f[2], f[3]]));
                }
                b.append(true);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::I16(b) => Arc::new(b.finish()),
            ColumnBuilder::I32(b) => Arc::new(b.finish()),
            ColumnBuilder::I64(b) => Arc::new(b.finish()),
            ColumnBuilder::F32(b) => Arc::new(b.finish()),
            ColumnBuilder::F64(b) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Bin(b) => Arc::new(b.finish()),
            ColumnBuilder::Uuid(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Ts(b, tz) => match tz {
                Some(tz) => Arc::new(b.finish().with_timezone(*tz)),
                None => Arc::new(b.finish()),
            },
            ColumnBuilder::Vector(b, _) => ArrayBuilder::finish(b),
        }
    }
}

/// Encodes record batches (of the columns `kinds`) as a binary COPY stream: the header
/// with the first batch, the end marker by [`trailer`].
pub struct CopyEncoder {
    kinds: Vec<PgKind>,
    header_done: bool,
}

impl CopyEncoder {
    pub fn new(kinds: Vec<PgKind>) -> CopyEncoder {
        CopyEncoder {
            kinds,
            header_done: false,
        }
    }

    /// Appends the batch's rows to `out`.
    pub fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), BinaryError> {
        if !self.header_done {
            out.extend_from_slice(SIGNATURE);
            out.extend_from_slice(&0u32.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes());
            self.header_done = true;
        }
        if batch.num_columns() != self.kinds.len() {
            return Err(BinaryError::Malformed(format!(
                "a batch of {} columns where {} were expected",
                batch.num_columns(),
                self.kinds.len()
            )));
        }
        let ncols = self.kinds.len() as i16;
        for row in 0..batch.num_rows() {
            out.extend_from_slice(&ncols.to_be_bytes());
            for (i, kind) in self.kinds.iter().enumerate() {
                let col = batch.column(i);
                if col.is_null(row) {
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                    continue;
                }
                encode_value(*kind, col, row, out).map_err(|message| BinaryError::Value {
                    column: batch.schema().field(i).name().clone(),
                    message,
                })?;
            }
        }
        Ok(())
    }

    /// The end marker (and the header, for a stream of no batches).
    pub fn trailer(&mut self, out: &mut Vec<u8>) {
        if !self.header_done {
            out.extend_from_slice(SIGNATURE);
            out.extend_from_slice(&0u32.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes());
            self.header_done = true;
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
    }
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn encode_value(kind: PgKind, col: &ArrayRef, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let wrong = || format!("Parquet column is not of the type {kind:?} expects");
    match kind {
        PgKind::Bool => {
            let a = col.as_boolean_opt().ok_or_else(wrong)?;
            field(out, &[u8::from(a.value(row))]);
        }
        PgKind::Int2 => field(
            out,
            &col.as_primitive_opt::<Int16Type>()
                .ok_or_else(wrong)?
                .value(row)
                .to_be_bytes(),
        ),
        PgKind::Int4 => field(
            out,
            &col.as_primitive_opt::<Int32Type>()
                .ok_or_else(wrong)?
                .value(row)
                .to_be_bytes(),
        ),
        PgKind::Int8 => field(
            out,
            &col.as_primitive_opt::<Int64Type>()
                .ok_or_else(wrong)?
                .value(row)
                .to_be_bytes(),
        ),
        PgKind::Float4 => field(
            out,
            &col.as_primitive_opt::<Float32Type>()
                .ok_or_else(wrong)?
                .value(row)
                .to_be_bytes(),
        ),
        PgKind::Float8 => field(
            out,
            &col.as_primitive_opt::<Float64Type>()
                .ok_or_else(wrong)?
                .value(row)
                .to_be_bytes(),
        ),
        PgKind::Text | PgKind::Json => field(
            out,
            col.as_string_opt::<i32>()
                .ok_or_else(wrong)?
                .value(row)
                .as_bytes(),
        ),
        PgKind::Jsonb => {
            let s = col
                .as_string_opt::<i32>()
                .ok_or_else(wrong)?
                .value(row)
                .as_bytes();
            out.extend_from_slice(&((s.len() + 1) as i32).to_be_bytes());
            out.push(1);
            out.extend_from_slice(s);
        }
        PgKind::Bytea => field(
            out,
            col.as_binary_opt::<i32>().ok_or_else(wrong)?.value(row),
        ),
        PgKind::Uuid => field(
            out,
            col.as_fixed_size_binary_opt().ok_or_else(wrong)?.value(row),
        ),
        PgKind::Date => {
            let v = col
                .as_primitive_opt::<Date32Type>()
                .ok_or_else(wrong)?
                .value(row);
            field(out, &shift_i32(v, -PG_EPOCH_DAYS)?.to_be_bytes())
        }
        PgKind::Timestamp | PgKind::Timestamptz => {
            let v = col
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or_else(wrong)?
                .value(row);
            field(out, &shift_i64(v, -PG_EPOCH_MICROS)?.to_be_bytes())
        }
        PgKind::Vector { dim } => {
            let list = col.as_fixed_size_list_opt().ok_or_else(wrong)?;
            let values = list.value(row);
            let floats = values.as_primitive_opt::<Float32Type>().ok_or_else(wrong)?;
            if floats.len() != usize::from(dim) {
                return Err(format!("{} values where {dim} were expected", floats.len()));
            }
            out.extend_from_slice(&((4 + 4 * usize::from(dim)) as i32).to_be_bytes());
            out.extend_from_slice(&dim.to_be_bytes());
            out.extend_from_slice(&0u16.to_be_bytes());
            for f in floats.values().iter() {
                out.extend_from_slice(&f.to_be_bytes());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::archive::columns::{arrow_schema, ExportColumn};

    fn cols() -> Vec<ExportColumn> {
        [
            ("id", PgKind::Int8),
            ("tenant", PgKind::Uuid),
            ("at", PgKind::Timestamptz),
            ("m", PgKind::Jsonb),
            ("e", PgKind::Vector { dim: 3 }),
            ("d", PgKind::Date),
            ("t", PgKind::Text),
        ]
        .into_iter()
        .map(|(n, k)| ExportColumn {
            name: n.into(),
            pg_type: String::new(),
            kind: k,
            nullable: true,
        })
        .collect()
    }

    /// A stream as PostgreSQL would send it: two rows, one of them all NULL.
    fn stream() -> Vec<u8> {
        let mut s = SIGNATURE.to_vec();
        s.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        s.extend_from_slice(&7i16.to_be_bytes());
        field(&mut s, &42i64.to_be_bytes());
        field(&mut s, &[7u8; 16]);
        field(&mut s, &(-1_000_000i64).to_be_bytes());
        field(&mut s, b"\x01{\"a\": 1}");
        let mut v = vec![0, 3, 0, 0];
        for f in [1.5f32, -2.0, f32::MIN_POSITIVE] {
            v.extend_from_slice(&f.to_be_bytes());
        }
        field(&mut s, &v);
        field(&mut s, &i32::MAX.to_be_bytes());
        field(&mut s, "é".as_bytes());
        s.extend_from_slice(&7i16.to_be_bytes());
        for _ in 0..7 {
            s.extend_from_slice(&(-1i32).to_be_bytes());
        }
        s.extend_from_slice(&(-1i16).to_be_bytes());
        s
    }

    #[test]
    fn a_stream_decoded_in_any_chunks_encodes_back_to_the_same_bytes() {
        let cols = cols();
        let schema = arrow_schema(&cols, HashMap::new());
        let kinds: Vec<PgKind> = cols.iter().map(|c| c.kind).collect();
        let input = stream();
        for chunk in [1, 3, 7, input.len()] {
            let mut d = CopyDecoder::new(schema.clone(), kinds.clone());
            for c in input.chunks(chunk) {
                d.push(c).unwrap();
            }
            d.finish().unwrap();
            assert_eq!(d.buffered_rows(), 2);
            let batch = d.take_batch().unwrap();
            assert_eq!(batch.num_rows(), 2);
            let ts = batch.column(2).as_primitive::<TimestampMicrosecondType>();
            assert_eq!(ts.value(0), PG_EPOCH_MICROS - 1_000_000);
            let mut e = CopyEncoder::new(kinds.clone());
            let mut out = Vec::new();
            e.encode(&batch, &mut out).unwrap();
            e.trailer(&mut out);
            assert_eq!(out, input, "chunks of {chunk}");
        }
    }

    #[test]
    fn the_row_set_digest_ignores_the_order_of_the_rows_and_nothing_else() {
        let one = stream();
        let header = 19;
        // The stream's tuples, then the same tuples in reverse order.
        let mut tuples = Vec::new();
        let mut pos = header;
        loop {
            let len = tuple_len(&one[pos..], cols().len()).unwrap().unwrap();
            if len == 2 {
                break;
            }
            tuples.push(one[pos..pos + len].to_vec());
            pos += len;
        }
        assert!(tuples.len() >= 2, "the sample stream has rows");
        let mut reversed = one[..header].to_vec();
        for t in tuples.iter().rev() {
            reversed.extend_from_slice(t);
        }
        reversed.extend_from_slice(&(-1i16).to_be_bytes());
        let digest = |b: &[u8], chunk: usize| {
            let mut d = RowSetDigest::new(cols().len());
            for c in b.chunks(chunk) {
                d.push(c).unwrap();
            }
            d.finish().unwrap()
        };
        assert_ne!(one, reversed);
        assert_eq!(digest(&one, 7), digest(&reversed, 1000));
        assert_eq!(digest(&one, 7).0, tuples.len() as u64);
        // A row twice instead of once each, or one byte changed: another digest.
        let mut doubled = one[..header].to_vec();
        doubled.extend_from_slice(&tuples[0]);
        doubled.extend_from_slice(&tuples[0]);
        for t in &tuples[2..] {
            doubled.extend_from_slice(t);
        }
        doubled.extend_from_slice(&(-1i16).to_be_bytes());
        assert_ne!(digest(&doubled, 5).1, digest(&one, 5).1);
        let mut changed = one.clone();
        changed[header + 8] ^= 1;
        assert_ne!(digest(&changed, 5).1, digest(&one, 5).1);
        let mut cut = RowSetDigest::new(cols().len());
        cut.push(&one[..one.len() - 2]).unwrap();
        assert!(cut.finish().is_err());
    }

    #[test]
    fn a_truncated_or_wrong_stream_is_an_error() {
        let cols = cols();
        let schema = arrow_schema(&cols, HashMap::new());
        let kinds: Vec<PgKind> = cols.iter().map(|c| c.kind).collect();
        let input = stream();
        let mut d = CopyDecoder::new(schema.clone(), kinds.clone());
        d.push(&input[..input.len() - 5]).unwrap();
        assert!(d.finish().is_err());
        let mut d = CopyDecoder::new(schema, kinds[..6].to_vec());
        assert!(d.push(&input).unwrap_err().to_string().contains("7 fields"));
    }
}
