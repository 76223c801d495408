//! containerlab's inheritance: a node's value of a key comes from the node, else its
//! group, else its kind, else `defaults`; lists (`exec`, `binds`) and maps (`env`,
//! `labels`, `sysctls`) merge across the four levels instead, the more specific winning.
//! The node's kind and group are resolved first, the way containerlab does: the kind from
//! the node, its group, the group `defaults` names, then `defaults`; the group from the
//! node, its kind, then `defaults`.

use crate::clab::schema::{ClabFile, Def};
use crate::spec::raw::Sp;
use crate::spec::yaml::{Kind, Yaml};

/// A node with the definitions it inherits from, most specific first.
pub struct Resolved<'c> {
    pub name: Sp<String>,
    pub def: &'c Def,
    pub kind: Option<Sp<String>>,
    pub group: Option<Sp<String>>,
    levels: Vec<&'c Def>,
}

pub fn resolve<'c>(c: &'c ClabFile, name: &Sp<String>, node: &'c Def) -> Resolved<'c> {
    let kind = node
        .text("kind")
        .or_else(|| {
            node.text("group")
                .and_then(|g| c.group(&g.value))
                .and_then(|g| g.text("kind"))
        })
        .or_else(|| {
            c.defaults
                .text("group")
                .and_then(|g| c.group(&g.value))
                .and_then(|g| g.text("kind"))
        })
        .or_else(|| c.defaults.text("kind"));
    let group = node
        .text("group")
        .or_else(|| {
            kind.as_ref()
                .and_then(|k| c.kind(&k.value))
                .and_then(|k| k.text("group"))
        })
        .or_else(|| c.defaults.text("group"));
    let mut levels = vec![node];
    levels.extend(group.as_ref().and_then(|g| c.group(&g.value)));
    levels.extend(kind.as_ref().and_then(|k| c.kind(&k.value)));
    levels.push(&c.defaults);
    Resolved {
        name: name.clone(),
        def: node,
        kind,
        group,
        levels,
    }
}

impl<'c> Resolved<'c> {
    /// The value of the most specific level that sets `key`.
    pub fn field(&self, key: &str) -> Option<&'c Yaml> {
        self.levels.iter().find_map(|d| d.get(key))
    }

    /// A scalar key as located text.
    pub fn text(&self, key: &str) -> Option<Sp<String>> {
        self.levels.iter().find_map(|d| d.text(key))
    }

    /// Every level's value of `key`, least specific first (the order containerlab merges
    /// in).
    pub fn all(&self, key: &str) -> Vec<&'c Yaml> {
        self.levels
            .iter()
            .rev()
            .filter_map(|d| d.get(key))
            .collect()
    }

    /// A list key merged over the levels, least specific first, each text once.
    pub fn list(&self, key: &str) -> Vec<&'c Yaml> {
        let mut out: Vec<&Yaml> = Vec::new();
        for v in self.all(key) {
            let items: &[Yaml] = match &v.kind {
                Kind::Seq(items) => items,
                _ => std::slice::from_ref(v),
            };
            for item in items {
                if !out
                    .iter()
                    .any(|o| o.as_str().is_some() && o.as_str() == item.as_str())
                {
                    out.push(item);
                }
            }
        }
        out
    }

    /// A map key merged over the levels: a more specific level replaces a key's value but
    /// keeps its first position.
    pub fn map(&self, key: &str) -> Vec<(&'c Yaml, &'c Yaml)> {
        let mut out: Vec<(&Yaml, &Yaml)> = Vec::new();
        for v in self.all(key) {
            let Kind::Map(entries) = &v.kind else {
                continue;
            };
            for (k, val) in entries {
                match out.iter_mut().find(|(o, _)| o.as_str() == k.as_str()) {
                    Some(slot) => slot.1 = val,
                    None => out.push((k, val)),
                }
            }
        }
        out
    }
}
