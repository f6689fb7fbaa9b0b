//! The daemon's default ulimits (`--default-ulimit`, `default-ulimits`)
//! merged into a container's: a container's own limit of a name wins, the
//! daemon's fills the names it leaves unset. As dockerd, the merge is
//! made on a copy each time it is needed (the start's spec, inspect), so
//! the record keeps what was asked and a reloaded default applies to the
//! next start.

use std::collections::BTreeMap;

use berth_api::models::ResourcesUlimits;

use crate::config::Ulimit;

/// The container's ulimits followed by the defaults it does not set (by
/// name); `None` stays `None` when there is nothing to add.
pub fn merged(
    own: Option<&Vec<ResourcesUlimits>>,
    defaults: &BTreeMap<String, Ulimit>,
) -> Option<Vec<ResourcesUlimits>> {
    let mut out = own.cloned();
    for (name, d) in defaults {
        let set = out
            .iter()
            .flatten()
            .any(|u| u.name.as_deref() == Some(name.as_str()));
        if !set {
            out.get_or_insert_with(Vec::new).push(ResourcesUlimits {
                name: Some(d.name.clone()),
                soft: Some(d.soft),
                hard: Some(d.hard),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ul(name: &str, soft: i64, hard: i64) -> ResourcesUlimits {
        ResourcesUlimits {
            name: Some(name.into()),
            soft: Some(soft),
            hard: Some(hard),
        }
    }

    fn defaults(v: &[(&str, i64, i64)]) -> BTreeMap<String, Ulimit> {
        v.iter()
            .map(|(n, s, h)| {
                (
                    n.to_string(),
                    Ulimit {
                        name: n.to_string(),
                        soft: *s,
                        hard: *h,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn own_limit_wins_and_defaults_fill_the_rest() {
        let own = vec![ul("nofile", 10, 20)];
        let d = defaults(&[("nofile", 1024, 2048), ("nproc", 50, 60)]);
        assert_eq!(
            merged(Some(&own), &d),
            Some(vec![ul("nofile", 10, 20), ul("nproc", 50, 60)])
        );
    }

    #[test]
    fn nothing_to_merge_keeps_null() {
        assert_eq!(merged(None, &BTreeMap::new()), None);
        let d = defaults(&[("core", 0, 0)]);
        assert_eq!(merged(None, &d), Some(vec![ul("core", 0, 0)]));
    }
}
