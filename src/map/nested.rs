//! list<T> and struct<…> columns: cells are cut into leaf texts (JSON array elements, object
//! members, or `split` pieces) gathered into one child text column per level, which is then
//! coerced like any column — one tight loop per level, no per-row `serde_json::Value`.
//!
//! Invariant: a row whose cell or any of its leaves is rejected is null and reported once.

use std::sync::Arc;

use arrow::array::{Array, BooleanBufferBuilder, ListArray, StringArray, StructArray};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::Field;

use super::coerce::{Coerced, Pre, RejectReason, coerce_with};
use crate::schema::ColumnType;
use crate::schema::jsontext::{self, JsonFail};
use crate::schema::transform::Transform;
use crate::schema::types::{LIST_ELEMENT_NAME, StructField, struct_fields};

/// Text values gathered for a child column.
struct TextBuilder {
    values: Vec<u8>,
    offsets: Vec<i32>,
    valid: BooleanBufferBuilder,
}

impl TextBuilder {
    fn with_capacity(items: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(items + 1);
        offsets.push(0);
        TextBuilder {
            values: Vec::with_capacity(bytes),
            offsets,
            valid: BooleanBufferBuilder::new(items),
        }
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn push(&mut self, v: Option<&str>) {
        if let Some(s) = v {
            self.values.extend_from_slice(s.as_bytes());
        }
        let end = i32::try_from(self.values.len()).expect(
            "invariant: leaf texts are no longer than their cell texts, whose offsets are i32",
        );
        self.offsets.push(end);
        self.valid.append(v.is_some());
    }

    /// Drops items back to `len` (a rejected row's partial leaves).
    fn truncate(&mut self, len: usize) {
        self.offsets.truncate(len + 1);
        self.values.truncate(self.offsets[len] as usize);
        self.valid.truncate(len);
    }

    fn finish(mut self) -> StringArray {
        let nulls = NullBuffer::new(self.valid.finish());
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        StringArray::try_new(
            offsets,
            Buffer::from(self.values),
            Some(nulls).filter(|n| n.null_count() > 0),
        )
        .expect("invariant: values are whole `&str` pieces (valid UTF-8) at monotonic offsets")
    }
}

/// Row validity bits plus the per-row rejects of a nested column.
struct Rows {
    valid: Vec<u8>,
    rejects: Vec<(usize, RejectReason)>,
}

impl Rows {
    fn new(n: usize) -> Self {
        Rows {
            valid: vec![0xFF; n.div_ceil(8)],
            rejects: Vec::new(),
        }
    }

    fn is_valid(&self, i: usize) -> bool {
        self.valid[i >> 3] & (1 << (i & 7)) != 0
    }

    fn null(&mut self, i: usize) {
        self.valid[i >> 3] &= !(1u8 << (i & 7));
    }

    fn reject(&mut self, i: usize, reason: RejectReason) {
        self.null(i);
        self.rejects.push((i, reason));
    }

    fn finish(mut self, n: usize) -> (Option<NullBuffer>, Vec<(usize, RejectReason)>) {
        // Cell-level rejects come in row order, leaf rejects are appended after: sort, and
        // keep the first reason of each row.
        self.rejects.sort_by_key(|&(i, _)| i);
        self.rejects.dedup_by_key(|&mut (i, _)| i);
        let nulls = NullBuffer::new(BooleanBuffer::new(Buffer::from(self.valid), 0, n));
        (Some(nulls).filter(|n| n.null_count() > 0), self.rejects)
    }
}

fn json_reason(f: JsonFail) -> RejectReason {
    match f {
        JsonFail::Invalid => RejectReason::InvalidJson,
        JsonFail::WrongKind => RejectReason::WrongJsonKind,
    }
}

/// list<elem> from JSON array text, or from `split` pieces (each trimmed).
pub(super) fn list(
    elem: &ColumnType,
    tf: &Transform,
    pre: &Pre<'_>,
    nullable: bool,
    raw: &StringArray,
) -> Coerced {
    let n = raw.len();
    let mut child = TextBuilder::with_capacity(n * 4, raw.values().len());
    let mut offsets: Vec<i32> = Vec::with_capacity(n + 1);
    offsets.push(0);
    let mut rows = Rows::new(n);
    for i in 0..n {
        match pre.cell(raw, i) {
            None if nullable => rows.null(i),
            None => rows.reject(i, RejectReason::Null),
            Some(text) => {
                let mark = child.len();
                let parsed = match &tf.split {
                    Some(delim) => {
                        text.split(delim.as_str())
                            .for_each(|piece| child.push(Some(piece.trim())));
                        Ok(())
                    }
                    None => jsontext::for_each_element(text, |item| child.push(item.as_deref())),
                };
                if let Err(f) = parsed {
                    child.truncate(mark);
                    rows.reject(i, json_reason(f));
                }
            }
        }
        offsets.push(child.len() as i32);
    }
    let child_raw = child.finish();
    let leaf = coerce_with(elem, tf, &Pre::new(elem, tf, None), true, &child_raw);
    // Leaf rejects (ascending element index) → the rows owning them.
    let mut row = 0usize;
    for (j, reason) in leaf.rejects {
        while offsets[row + 1] as usize <= j {
            row += 1;
        }
        if rows.is_valid(row) {
            rows.reject(row, reason);
        }
    }
    let (nulls, rejects) = rows.finish(n);
    let field = Arc::new(Field::new(LIST_ELEMENT_NAME, elem.arrow_type(), true));
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    let array = ListArray::try_new(field, offsets, leaf.array, nulls).expect(
        "invariant: offsets index the child built alongside them; element field is nullable",
    );
    Coerced {
        array: Arc::new(array),
        rejects,
    }
}

/// struct<fields> from JSON object text: members matched to fields by exact key (first
/// occurrence wins), missing members null, other members ignored.
pub(super) fn strukt(
    fields: &[StructField],
    tf: &Transform,
    pre: &Pre<'_>,
    nullable: bool,
    raw: &StringArray,
) -> Coerced {
    let n = raw.len();
    let per_field = raw.values().len() / fields.len().max(1);
    let mut children: Vec<TextBuilder> = fields
        .iter()
        .map(|_| TextBuilder::with_capacity(n, per_field))
        .collect();
    let mut seen = vec![false; fields.len()];
    let mut rows = Rows::new(n);
    for i in 0..n {
        let Some(text) = pre.cell(raw, i) else {
            if nullable {
                rows.null(i);
            } else {
                rows.reject(i, RejectReason::Null);
            }
            children.iter_mut().for_each(|c| c.push(None));
            continue;
        };
        seen.fill(false);
        let parsed = jsontext::for_each_member(text, |key, item| {
            if let Some(f) = fields.iter().position(|f| f.name == key)
                && !seen[f]
            {
                seen[f] = true;
                children[f].push(item.as_deref());
            }
        });
        match parsed {
            Ok(()) => {
                for (f, child) in children.iter_mut().enumerate() {
                    if !seen[f] {
                        child.push(None);
                    }
                }
            }
            Err(fail) => {
                for child in &mut children {
                    child.truncate(i);
                    child.push(None);
                }
                rows.reject(i, json_reason(fail));
            }
        }
    }
    let mut arrays = Vec::with_capacity(fields.len());
    for (field, child) in fields.iter().zip(children) {
        let leaf = coerce_with(
            &field.ty,
            tf,
            &Pre::new(&field.ty, tf, None),
            true,
            &child.finish(),
        );
        for (i, reason) in leaf.rejects {
            if rows.is_valid(i) {
                rows.reject(i, reason);
            }
        }
        arrays.push(leaf.array);
    }
    let (nulls, rejects) = rows.finish(n);
    let array = StructArray::try_new(struct_fields(fields), arrays, nulls).expect(
        "invariant: every child has one value per row and the declared type; fields are nullable",
    );
    Coerced {
        array: Arc::new(array),
        rejects,
    }
}

/// The values at `path` inside each cell of `root` (a path source), as a text column:
/// strings unescaped, other values as JSON text, missing/`null`/blank → null. A cell that is
/// not JSON, or whose path steps into a scalar, is a reject (and null).
pub(super) fn extract_path(
    root: &StringArray,
    path: &[String],
) -> (StringArray, Vec<(usize, RejectReason)>) {
    let n = root.len();
    let mut out = TextBuilder::with_capacity(n, root.values().len() / 2);
    let mut rejects = Vec::new();
    for i in 0..n {
        let cell = (!root.is_null(i))
            .then(|| root.value(i))
            .filter(|t| !t.trim().is_empty());
        let Some(text) = cell else {
            out.push(None);
            continue;
        };
        match jsontext::extract(text, path) {
            Ok(item) => out.push(item.as_deref()),
            Err(fail) => {
                out.push(None);
                rejects.push((i, json_reason(fail)));
            }
        }
    }
    (out.finish(), rejects)
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{Decimal128Type, Int64Type};

    use super::*;
    use crate::map::coerce::coerce;
    use crate::schema::ColumnSpec;
    use RejectReason::*;

    fn run(ty: &str, tf: Transform, values: &[Option<&str>]) -> Coerced {
        let spec = ColumnSpec {
            name: "c".into(),
            source: "c".into(),
            ty: ty.parse().unwrap(),
            nullable: true,
            default: None,
            transform: tf,
        };
        coerce(&spec, &StringArray::from(values.to_vec()))
    }

    fn ints(c: &Coerced) -> Vec<Option<Vec<Option<i64>>>> {
        let list = c.array.as_list::<i32>();
        list.iter()
            .map(|v| v.map(|a| a.as_primitive::<Int64Type>().iter().collect()))
            .collect()
    }

    #[test]
    fn lists_from_json_arrays() {
        let c = run(
            "list<int64>",
            Transform::default(),
            &[
                Some("[1, 2, 9007199254740993]"),
                Some("[]"),
                None,
                Some("[1, null, \" 3 \"]"),
                Some("[1, \"x\"]"),
                Some("{\"a\": 1}"),
                Some("[1,"),
                Some("  "),
                Some("[4]"),
            ],
        );
        assert_eq!(
            ints(&c),
            vec![
                Some(vec![Some(1), Some(2), Some(9_007_199_254_740_993)]),
                Some(vec![]),
                None,
                Some(vec![Some(1), None, Some(3)]),
                None,
                None,
                None,
                None,
                Some(vec![Some(4)]),
            ]
        );
        assert_eq!(
            c.rejects,
            vec![(4, Syntax), (5, WrongJsonKind), (6, InvalidJson)]
        );
    }

    #[test]
    fn lists_from_split_strings() {
        let tf = Transform {
            split: Some("|".into()),
            ..Transform::default()
        };
        let c = run(
            "list<string>",
            tf.clone(),
            &[Some("a | b|c"), Some("solo"), Some(""), Some("x||y")],
        );
        let list = c.array.as_list::<i32>();
        let got: Vec<Option<Vec<Option<String>>>> = list
            .iter()
            .map(|v| {
                v.map(|a| {
                    a.as_string::<i32>()
                        .iter()
                        .map(|s| s.map(str::to_owned))
                        .collect()
                })
            })
            .collect();
        let s = |v: &[&str]| Some(v.iter().map(|x| Some(x.to_string())).collect::<Vec<_>>());
        assert_eq!(
            got,
            vec![s(&["a", "b", "c"]), s(&["solo"]), None, s(&["x", "", "y"])]
        );
        let c = run("list<int64>", tf, &[Some("1|2"), Some("1||2"), Some("1|b")]);
        assert_eq!(
            ints(&c),
            vec![
                Some(vec![Some(1), Some(2)]),
                Some(vec![Some(1), None, Some(2)]),
                None
            ]
        );
        assert_eq!(c.rejects, vec![(2, Syntax)]);
    }

    #[test]
    fn lists_apply_leaf_transforms() {
        let tf = Transform {
            currency: Some(crate::schema::transform::Currency::Any),
            ..Transform::default()
        };
        let c = run("list<decimal(6,2)>", tf, &[Some(r#"["$1.50", 2, null]"#)]);
        let list = c.array.as_list::<i32>();
        let got: Vec<Option<i128>> = list
            .value(0)
            .as_primitive::<Decimal128Type>()
            .iter()
            .collect();
        assert_eq!(got, vec![Some(150), Some(200), None]);
    }

    #[test]
    fn nested_lists() {
        let c = run(
            "list<list<int64>>",
            Transform::default(),
            &[Some("[[1,2],[],null,[3]]"), Some("[[1],[\"x\"]]")],
        );
        let outer = c.array.as_list::<i32>();
        assert_eq!(outer.value(0).len(), 4);
        let inner = outer.value(0);
        let inner = inner.as_list::<i32>();
        assert_eq!(
            inner.value(0).as_primitive::<Int64Type>().values().to_vec(),
            vec![1, 2]
        );
        assert!(inner.is_null(2));
        assert_eq!(c.rejects, vec![(1, Syntax)]);
    }

    #[test]
    fn structs_from_json_objects() {
        let c = run(
            "struct<id:int64,name:string,tags:list<string>>",
            Transform::default(),
            &[
                Some(
                    r#"{"id": 9007199254740993, "name": "灯 💡", "tags": ["a"], "extra": {"x": 1}}"#,
                ),
                Some(r#"{"name": null}"#),
                None,
                Some(r#"{"id": "x"}"#),
                Some("[1]"),
                Some(r#"{"id": 1, "id": 2}"#),
            ],
        );
        let st = c.array.as_struct();
        let ids = st.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.value(0), 9_007_199_254_740_993);
        assert_eq!(st.column(1).as_string::<i32>().value(0), "灯 💡");
        assert!(st.is_valid(1) && ids.is_null(1) && st.column(1).is_null(1));
        assert!(st.is_null(2) && st.is_null(3) && st.is_null(4));
        assert_eq!(ids.value(5), 1);
        assert_eq!(c.rejects, vec![(3, Syntax), (4, WrongJsonKind)]);
    }
}
