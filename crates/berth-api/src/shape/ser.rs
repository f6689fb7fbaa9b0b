//! Shaping while serializing: a `serde::Serializer` wrapper that walks a
//! shape's tree alongside the value, drops the keys the version does not
//! have, and writes the missing ones with their zero values at the end of
//! each object. One pass, no intermediate `serde_json::Value`.

use serde::ser::{self, Serialize, SerializeMap, SerializeSeq, SerializeStruct, Serializer};

use super::{is_empty, Node, Zero};
use crate::ApiVersion;

/// `v`, serialized in the shape `node` describes (as is without a node).
pub(super) struct Shaped<'a, T: ?Sized> {
    pub v: &'a T,
    pub node: Option<&'static Node>,
    pub ver: ApiVersion,
}

impl<T: Serialize + ?Sized> Serialize for Shaped<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.node {
            None => self.v.serialize(s),
            Some(node) => self.v.serialize(Shaper {
                inner: s,
                node,
                ver: self.ver,
            }),
        }
    }
}

/// What a field holding `child` becomes: dropped, or written (the value
/// probed first when the field is `omitempty` at this version).
enum Plan {
    Drop,
    Write,
    WriteUnlessEmpty,
    WriteNullIfEmpty,
}

fn plan(child: &Node, ver: ApiVersion) -> Plan {
    if !child.in_version(ver) {
        Plan::Drop
    } else if child.omit_empty.is_some_and(|s| ver >= s) {
        Plan::WriteUnlessEmpty
    } else if child.empty_null.is_some_and(|u| ver < u) {
        Plan::WriteNullIfEmpty
    } else {
        Plan::Write
    }
}

/// A missing field's zero value (a struct gets its own fields filled).
struct ZeroOf {
    node: &'static Node,
    ver: ApiVersion,
}

struct EmptyObject;

impl Serialize for EmptyObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
}

impl Serialize for ZeroOf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.node.zero {
            Some(Zero::Struct) => Shaped {
                v: &EmptyObject,
                node: Some(self.node),
                ver: self.ver,
            }
            .serialize(s),
            Some(z) => z.value().serialize(s),
            None => s.serialize_none(),
        }
    }
}

/// The fields of `node` not yet written that must be, with their keys.
fn missing<'a>(
    node: &'static Node,
    seen: &'a [bool],
    ver: ApiVersion,
) -> impl Iterator<Item = (&'static str, ZeroOf)> + 'a {
    node.fields
        .iter()
        .zip(seen)
        .filter(move |((_, c), seen)| {
            !**seen && c.zero.is_some() && matches!(plan(c, ver), Plan::Write)
        })
        .map(move |((k, c), _)| (k.as_str(), ZeroOf { node: c, ver }))
}

struct Shaper<S> {
    inner: S,
    node: &'static Node,
    ver: ApiVersion,
}

macro_rules! forward {
    ($($name:ident($t:ty)),* $(,)?) => {
        $(fn $name(self, v: $t) -> Result<S::Ok, S::Error> { self.inner.$name(v) })*
    };
}

impl<S: Serializer> Serializer for Shaper<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = SeqShaper<S::SerializeSeq>;
    type SerializeTuple = S::SerializeTuple;
    type SerializeTupleStruct = S::SerializeTupleStruct;
    type SerializeTupleVariant = S::SerializeTupleVariant;
    type SerializeMap = MapShaper<S::SerializeMap>;
    type SerializeStruct = StructShaper<S::SerializeStruct>;
    type SerializeStructVariant = S::SerializeStructVariant;

    forward!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<S::Ok, S::Error> {
        v.serialize(self)
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_variant(name, index, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<S::Ok, S::Error> {
        let v = Shaped {
            v,
            node: Some(self.node),
            ver: self.ver,
        };
        self.inner.serialize_newtype_struct(name, &v)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<S::Ok, S::Error> {
        self.inner
            .serialize_newtype_variant(name, index, variant, v)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        Ok(SeqShaper {
            inner: self.inner.serialize_seq(len)?,
            elems: self.node.elems.as_deref(),
            ver: self.ver,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<S::SerializeTuple, S::Error> {
        self.inner.serialize_tuple(len)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<S::SerializeTupleStruct, S::Error> {
        self.inner.serialize_tuple_struct(name, len)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<S::SerializeTupleVariant, S::Error> {
        self.inner
            .serialize_tuple_variant(name, index, variant, len)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        // A zero length makes serde_json close the object at once: count
        // the fields that may be added.
        let len = len.map(|l| l + self.node.fields.len());
        Ok(MapShaper {
            inner: self.inner.serialize_map(len)?,
            node: self.node,
            seen: vec![false; self.node.fields.len()],
            key: None,
            ver: self.ver,
        })
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let len = len + self.node.fields.len();
        Ok(StructShaper {
            inner: self.inner.serialize_struct(name, len)?,
            node: self.node,
            seen: vec![false; self.node.fields.len()],
            ver: self.ver,
        })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<S::SerializeStructVariant, S::Error> {
        self.inner
            .serialize_struct_variant(name, index, variant, len)
    }
}

struct SeqShaper<Q> {
    inner: Q,
    elems: Option<&'static Node>,
    ver: ApiVersion,
}

impl<Q: SerializeSeq> SerializeSeq for SeqShaper<Q> {
    type Ok = Q::Ok;
    type Error = Q::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Q::Error> {
        self.inner.serialize_element(&Shaped {
            v,
            node: self.elems,
            ver: self.ver,
        })
    }

    fn end(self) -> Result<Q::Ok, Q::Error> {
        self.inner.end()
    }
}

/// How one field of `node` is written: its child node, or the dynamic-map
/// entry node; `None` when it is dropped or empty under `omitempty`.
fn field<T: Serialize + ?Sized, E: ser::Error>(
    node: &'static Node,
    seen: &mut [bool],
    key: &str,
    v: &T,
    ver: ApiVersion,
) -> Result<Option<FieldValue<'static>>, E> {
    let Some(i) = node.fields.iter().position(|(k, _)| k == key) else {
        return Ok(Some(FieldValue::Plain(node.entries.as_deref())));
    };
    seen[i] = true;
    let child = &node.fields[i].1;
    Ok(match plan(child, ver) {
        Plan::Drop => None,
        Plan::Write => Some(FieldValue::Plain(Some(child))),
        Plan::WriteUnlessEmpty => {
            let probe = serde_json::to_value(v).map_err(E::custom)?;
            (!is_empty(&probe)).then_some(FieldValue::Probed(child, probe))
        }
        Plan::WriteNullIfEmpty => {
            let mut probe = serde_json::to_value(v).map_err(E::custom)?;
            let empty = match &probe {
                serde_json::Value::Array(a) => a.is_empty(),
                serde_json::Value::Object(m) => m.is_empty(),
                _ => false,
            };
            if empty {
                probe = serde_json::Value::Null;
            }
            Some(FieldValue::Probed(child, probe))
        }
    })
}

enum FieldValue<'n> {
    Plain(Option<&'n Node>),
    Probed(&'n Node, serde_json::Value),
}

struct StructShaper<T> {
    inner: T,
    node: &'static Node,
    seen: Vec<bool>,
    ver: ApiVersion,
}

impl<M: SerializeStruct> SerializeStruct for StructShaper<M> {
    type Ok = M::Ok;
    type Error = M::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), M::Error> {
        let ver = self.ver;
        match field::<T, M::Error>(self.node, &mut self.seen, key, v, ver)? {
            None => Ok(()),
            Some(FieldValue::Plain(node)) => {
                self.inner.serialize_field(key, &Shaped { v, node, ver })
            }
            Some(FieldValue::Probed(node, probe)) => {
                let v = Shaped {
                    v: &probe,
                    node: Some(node),
                    ver,
                };
                self.inner.serialize_field(key, &v)
            }
        }
    }

    fn end(mut self) -> Result<M::Ok, M::Error> {
        for (k, z) in missing(self.node, &self.seen, self.ver) {
            self.inner.serialize_field(k, &z)?;
        }
        self.inner.end()
    }
}

struct MapShaper<M> {
    inner: M,
    node: &'static Node,
    seen: Vec<bool>,
    /// A key given alone (`serialize_key`), until its value comes.
    key: Option<String>,
    ver: ApiVersion,
}

impl<M: SerializeMap> MapShaper<M> {
    fn entry<T: Serialize + ?Sized>(&mut self, key: &str, v: &T) -> Result<(), M::Error> {
        let ver = self.ver;
        match field::<T, M::Error>(self.node, &mut self.seen, key, v, ver)? {
            None => Ok(()),
            Some(FieldValue::Plain(node)) => {
                self.inner.serialize_entry(key, &Shaped { v, node, ver })
            }
            Some(FieldValue::Probed(node, probe)) => {
                let v = Shaped {
                    v: &probe,
                    node: Some(node),
                    ver,
                };
                self.inner.serialize_entry(key, &v)
            }
        }
    }
}

impl<M: SerializeMap> SerializeMap for MapShaper<M> {
    type Ok = M::Ok;
    type Error = M::Error;

    fn serialize_key<K: Serialize + ?Sized>(&mut self, key: &K) -> Result<(), M::Error> {
        self.key = Some(key_string(key)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), M::Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| <M::Error as ser::Error>::custom("map value without a key"))?;
        self.entry(&key, v)
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        v: &V,
    ) -> Result<(), M::Error> {
        let key = key_string(key)?;
        self.entry(&key, v)
    }

    fn end(mut self) -> Result<M::Ok, M::Error> {
        for (k, z) in missing(self.node, &self.seen, self.ver) {
            self.inner.serialize_entry(k, &z)?;
        }
        self.inner.end()
    }
}

/// A JSON object key as a string (what serde_json accepts as keys).
fn key_string<K: Serialize + ?Sized, E: ser::Error>(key: &K) -> Result<String, E> {
    match serde_json::to_value(key).map_err(E::custom)? {
        serde_json::Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}
