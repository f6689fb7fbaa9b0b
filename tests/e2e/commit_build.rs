//! Issue 15: images made by `docker commit` and by the classic builder
//! record what dockerd 20.10 records (`Container`, `ContainerConfig`,
//! `Parent`, `Comment`, no layer for an unchanged rw layer), and
//! `docker builder prune` leaves a build's dangling result to
//! `docker image prune`.

use std::collections::BTreeMap;
use std::io::Read;

use berth_tests::*;
use serde_json::{json, Value};

fn layers(img: &Value) -> usize {
    img["RootFS"]["Layers"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0)
}

/// The image config and the layer tars' entry names, from `docker save`.
fn saved(d: &Daemon, name: &str) -> (Value, Vec<Vec<String>>) {
    let (status, _, body) = d.raw("GET", &format!("/v1.41/images/{name}/get"), None);
    assert_eq!(status, 200);
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut ar = tar::Archive::new(body.as_slice());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(p, data);
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let config: Value =
        serde_json::from_slice(&files[manifest[0]["Config"].as_str().unwrap()]).unwrap();
    let mut out = Vec::new();
    for l in manifest[0]["Layers"].as_array().unwrap() {
        let data = &files[l.as_str().unwrap()];
        let mut names = Vec::new();
        let mut ar = tar::Archive::new(data.as_slice());
        for e in ar.entries().unwrap() {
            names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
        }
        out.push(names);
    }
    (config, out)
}

#[test]
fn commit_records_the_container_its_config_and_parent() {
    let d = daemon();
    let base = d.api_inspect("images", "busybox:latest");
    let base_id = base["Id"].as_str().unwrap().to_string();
    d.docker_ok(&[
        "run", "--name", "cx", "--label", "k=v", "busybox", "sh", "-c", "echo bye",
    ]);
    let cid = d
        .docker_ok(&["inspect", "-f", "{{.Id}}", "cx"])
        .trim()
        .to_string();
    d.docker_ok(&["commit", "-a", "me", "-m", "msg", "cx", "cc:1"]);
    d.docker_ok(&["commit", "cx", "cc:2"]);

    let one = d.api_inspect("images", "cc:1");
    assert_eq!(one["Comment"], "msg");
    assert_eq!(one["Author"], "me");
    assert_eq!(one["Container"], cid.as_str());
    assert_eq!(one["Parent"], base_id.as_str());
    let cc = &one["ContainerConfig"];
    assert_eq!(cc["Cmd"], json!(["sh", "-c", "echo bye"]), "{cc}");
    assert_eq!(cc["Labels"], json!({"k": "v"}), "{cc}");
    assert_eq!(cc["Hostname"], &cid[..12]);
    assert_eq!(cc["Image"], "busybox");
    assert_eq!(one["Config"]["Cmd"], json!(["sh", "-c", "echo bye"]));
    // Nothing changed in the rw layer: no layer added, an empty history entry.
    assert_eq!(layers(&one), layers(&base), "{one}");
    let (config, tars) = saved(&d, "cc:1");
    assert_eq!(tars.len(), layers(&base));
    let last = config["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["empty_layer"], true, "{last}");
    assert_eq!(last["created_by"], "sh -c echo bye");
    assert_eq!(last["comment"], "msg");
    let hist = d.get_json("/v1.41/images/cc:1/history");
    assert_eq!(hist[0]["Comment"], "msg");
    assert_eq!(hist[0]["Size"], 0);
    // Entries are named after the image and its parents, as dockerd does.
    assert_eq!(hist[0]["Id"], one["Id"]);
    assert_eq!(hist[0]["Tags"], json!(["cc:1"]));
    assert_eq!(hist[1]["Id"], base_id.as_str(), "{hist}");
    assert_eq!(hist[1]["Tags"], json!(["busybox:latest"]));

    // Without -m the comment is empty, not the base image's.
    let two = d.api_inspect("images", "cc:2");
    assert_eq!(two["Comment"], "", "{two}");
    assert_eq!(two["Author"], "");
    assert_eq!(two["Parent"], base_id.as_str());

    // From 1.45 the v1 fields are gone.
    let new = d.get_json("/v1.45/images/cc:1/json");
    assert!(new.get("Container").is_none() && new.get("ContainerConfig").is_none());

    // A change is one new layer holding just it (no mount-point stubs).
    d.docker_ok(&["run", "--name", "cy", "busybox", "sh", "-c", "echo x > /f"]);
    d.docker_ok(&["commit", "cy", "cc:3"]);
    let three = d.api_inspect("images", "cc:3");
    assert_eq!(layers(&three), layers(&base) + 1);
    let (config, tars) = saved(&d, "cc:3");
    assert_eq!(tars.last().unwrap(), &vec!["f".to_string()], "{tars:?}");
    let last = config["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(last.get("empty_layer").is_none(), "{last}");
    assert_eq!(d.docker_ok(&["run", "--rm", "cc:3", "cat", "/f"]), "x\n");

    d.docker_ok(&["rm", "cx", "cy"]);
    d.docker_ok(&["rmi", "cc:1", "cc:2", "cc:3"]);
}

fn build(d: &Daemon, dockerfile: &str, args: &[&str]) -> String {
    let ctx = scratch();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    let dir = ctx.path().to_string_lossy().into_owned();
    let o = d
        .docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .arg("build")
        .args(args)
        .arg(&dir)
        .output()
        .expect("docker build");
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    stdout(&o)
}

#[test]
fn build_steps_record_their_container_config() {
    let d = daemon();
    let base_id = d.api_inspect("images", "busybox:latest")["Id"]
        .as_str()
        .unwrap()
        .to_string();
    build(
        &d,
        "FROM busybox:latest\nENV A=1\nLABEL l=v\nEXPOSE 80\nVOLUME /data\n\
         RUN echo hi > /f\nRUN true\nCMD [\"sh\"]\n",
        &["-t", "b1"],
    );
    // The step images, newest first, by Parent.
    let mut chain = vec![d.api_inspect("images", "b1")];
    while chain.len() < 8 {
        let parent = chain.last().unwrap()["Parent"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(!parent.is_empty(), "{}", chain.last().unwrap());
        if parent == base_id {
            break;
        }
        chain.push(d.api_inspect("images", &parent));
    }
    chain.reverse();
    assert_eq!(chain.len(), 7);
    let nop = |s: &str| json!(["/bin/sh", "-c", "#(nop) ", s]);
    let cmds = [
        nop("ENV A=1"),
        nop("LABEL l=v"),
        nop("EXPOSE 80"),
        nop("VOLUME [/data]"),
        json!(["/bin/sh", "-c", "echo hi > /f"]),
        json!(["/bin/sh", "-c", "true"]),
        nop("CMD [\"sh\"]"),
    ];
    let mut parent = base_id.clone();
    for (img, cmd) in chain.iter().zip(cmds.iter()) {
        let cc = &img["ContainerConfig"];
        assert_eq!(&cc["Cmd"], cmd, "{img}");
        assert_eq!(cc["Image"], parent.as_str(), "{img}");
        assert_eq!(img["Parent"], parent.as_str());
        let container = img["Container"].as_str().unwrap();
        assert_eq!(container.len(), 64, "{img}");
        assert!(container.bytes().all(|b| b.is_ascii_hexdigit()));
        // A metadata step's container was created with that config (which
        // gave it a hostname); a RUN's config is the one moby saves.
        if cmd[2] == "#(nop) " {
            assert_eq!(cc["Hostname"], &container[..12], "{img}");
            assert!(cc["Labels"].is_object(), "{img}");
        } else {
            assert_eq!(cc["Hostname"], "", "{img}");
        }
        assert_eq!(cc["Env"][1], "A=1", "{img}");
        parent = img["Id"].as_str().unwrap().to_string();
    }
    // ENV ran before any LABEL: container creation gave it an empty map.
    assert_eq!(chain[0]["ContainerConfig"]["Labels"], json!({}));
    let last = &chain[6]["ContainerConfig"];
    assert_eq!(last["Labels"], json!({"l": "v"}));
    assert_eq!(last["ExposedPorts"], json!({"80/tcp": {}}));
    assert_eq!(last["Volumes"], json!({"/data": {}}));
    assert_eq!(chain[6]["Config"]["Cmd"], json!(["sh"]));
    // Only `echo hi` added a layer; `RUN true` changed nothing.
    let n: Vec<usize> = chain.iter().map(layers).collect();
    assert_eq!(n, vec![1, 1, 1, 1, 2, 2, 2]);
    let (config, _) = saved(&d, "b1");
    let hist = config["history"].as_array().unwrap();
    let run_true = &hist[hist.len() - 2];
    assert_eq!(run_true["created_by"], "/bin/sh -c true");
    assert_eq!(run_true["empty_layer"], true, "{run_true}");
    d.docker_ok(&["rmi", "b1"]);
    assert_eq!(
        d.docker_ok(&["images", "-a", "-q"]).lines().count(),
        1,
        "only busybox is left"
    );
}

#[test]
fn a_copy_step_records_no_container() {
    let d = daemon();
    let ctx = scratch();
    std::fs::write(ctx.path().join("a.txt"), "hello\n").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox:latest\nCOPY a.txt /dst/\nWORKDIR /w\n",
    )
    .unwrap();
    let dir = ctx.path().to_string_lossy().into_owned();
    let o = d
        .docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-t", "b3", &dir])
        .output()
        .expect("docker build");
    assert!(o.status.success(), "{}", stderr(&o));
    let workdir = d.api_inspect("images", "b3");
    let copy = d.api_inspect("images", workdir["Parent"].as_str().unwrap());
    // moby copies without a container; WORKDIR creates one.
    assert_eq!(copy["Container"], "", "{copy}");
    assert_eq!(copy["ContainerConfig"]["Hostname"], "");
    assert_eq!(copy["ContainerConfig"]["Labels"], Value::Null);
    let cmd = copy["ContainerConfig"]["Cmd"].as_array().unwrap();
    assert_eq!(cmd.len(), 3, "{copy}");
    assert!(cmd[2].as_str().unwrap().starts_with("#(nop) COPY file:"));
    assert_eq!(
        workdir["ContainerConfig"]["Cmd"],
        json!(["/bin/sh", "-c", "#(nop) WORKDIR /w"])
    );
    let c = workdir["Container"].as_str().unwrap();
    assert_eq!(workdir["ContainerConfig"]["Hostname"], &c[..12]);
    // History names each step image.
    let hist = d.get_json("/v1.41/images/b3/history");
    assert_eq!(hist[0]["Id"], workdir["Id"]);
    assert_eq!(hist[1]["Id"], copy["Id"]);
    assert_eq!(hist[1]["Tags"], Value::Null, "{hist}");
    assert_eq!(hist[2]["Tags"], json!(["busybox:latest"]));
    d.docker_ok(&["rmi", "b3"]);
}

#[test]
fn build_prune_leaves_the_dangling_result_to_image_prune() {
    let d = daemon();
    let out = build(
        &d,
        "FROM busybox:latest\nLABEL p=1\nRUN echo 1 > /d\n",
        &["-q"],
    );
    let id = out.trim().to_string();
    assert!(id.starts_with("sha256:"), "{out}");
    let (status, _, body) = d.raw("POST", "/v1.41/build/prune", None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // Still there, as a dangling image.
    d.api_inspect("images", &id);
    let dangling = d.docker_ok(&["images", "-q", "--no-trunc", "-f", "dangling=true"]);
    assert_eq!(dangling.trim(), id, "{dangling}");
    let (status, _, body) = d.raw("POST", "/v1.41/images/prune", None);
    assert_eq!(status, 200);
    let pruned: Value = serde_json::from_slice(&body).unwrap();
    let deleted: Vec<&str> = pruned["ImagesDeleted"]
        .as_array()
        .unwrap_or_else(|| panic!("{pruned}"))
        .iter()
        .filter_map(|e| e["Deleted"].as_str())
        .collect();
    assert!(deleted.contains(&id.as_str()), "{pruned}");
    let (status, _, _) = d.raw("GET", &format!("/v1.41/images/{id}/json"), None);
    assert_eq!(status, 404);
    // The intermediate step images went with it.
    assert_eq!(d.docker_ok(&["images", "-a", "-q"]).lines().count(), 1);
}
