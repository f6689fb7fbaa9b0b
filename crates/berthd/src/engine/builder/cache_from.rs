//! `cachefrom`: images (pulled or loaded, so without the parent links the
//! local cache relies on) whose history continues the current image by the
//! step at hand count as that step's result, as dockerd's classic builder
//! does. An image that goes further yields an intermediate image made of
//! its history and layers up to the step.

use serde_json::{json, Value};

use crate::engine::images::ImageService;
use crate::engine::Result;

fn array(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// The image (ID) a source offers for the step `created_by` on `parent`
/// (the current image's config JSON; `None` for scratch), `config` being
/// the step's resulting container config.
pub fn lookup(
    images: &ImageService,
    sources: &[String],
    parent_id: Option<&str>,
    parent: Option<&Value>,
    created_by: &str,
    config: &Value,
) -> Result<Option<String>> {
    let (p_hist, p_diffs) = parent
        .map(|p| (array(&p["history"]), array(&p["rootfs"]["diff_ids"])))
        .unwrap_or_default();
    for id in sources {
        let Some(src) = images.get(id) else { continue };
        let s: Value = serde_json::from_str(&src.raw_config)?;
        let (hist, diffs) = (array(&s["history"]), array(&s["rootfs"]["diff_ids"]));
        let continues = !hist.is_empty()
            && ((p_hist.is_empty() && p_diffs.is_empty())
                || (p_hist.len() < hist.len()
                    && p_diffs.len() <= diffs.len()
                    && hist[..p_hist.len()] == p_hist[..]
                    && diffs[..p_diffs.len()] == p_diffs[..]));
        if !continues {
            continue;
        }
        let step = &hist[p_hist.len()];
        if step["created_by"].as_str() != Some(created_by) {
            continue;
        }
        if hist.len() == p_hist.len() + 1 {
            if parent_id.is_some() {
                // The source now hangs below the step images, which makes
                // those intermediate (hidden from `images`), as dockerd.
                images.create_child_image(src.raw_config.as_bytes(), &[], parent_id)?;
            }
            return Ok(Some(src.id.clone()));
        }
        // The layer of history entry i: one per entry without empty_layer.
        let layer_ix = hist[..p_hist.len()]
            .iter()
            .filter(|h| h["empty_layer"].as_bool() != Some(true))
            .count();
        let mut new_diffs = p_diffs.clone();
        if step["empty_layer"].as_bool() != Some(true) {
            match diffs.get(layer_ix) {
                Some(d) => new_diffs.push(d.clone()),
                None => continue,
            }
        }
        let mut new_hist = p_hist.clone();
        new_hist.push(step.clone());
        let mut spec = json!({
            "architecture": s["architecture"],
            "os": s["os"],
            "config": config,
            "created": step["created"],
            "rootfs": {"type": "layers", "diff_ids": new_diffs},
            "history": new_hist,
        });
        if let Some(a) = s.get("author") {
            spec["author"] = a.clone();
        }
        let img = images.create_child_image(&serde_json::to_vec(&spec)?, &[], parent_id)?;
        return Ok(Some(img.id.clone()));
    }
    Ok(None)
}
