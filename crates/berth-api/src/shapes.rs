//! The wire shape of each JSON answer (see [`crate::shape`]): the fields
//! moby's Go types emit without `omitempty`, with the versions that add or
//! drop them. Read from moby v28's API types and checked against dockerd
//! 20.10's answers at API 1.41.

use crate::shape::Shape;

/// `container.Config` (a container's, or an image's before API 1.50).
const CONTAINER_CONFIG: &str = r#"
Hostname ""
Domainname ""
User ""
AttachStdin false
AttachStdout false
AttachStderr false
Tty false
OpenStdin false
StdinOnce false
Env null
Cmd null
Image ""
Volumes null
WorkingDir ""
Entrypoint null
OnBuild null
Labels null
"#;

/// `container.HostConfig` with its embedded `Resources`.
const HOST_CONFIG: &str = r#"
Binds null
ContainerIDFile ""
LogConfig {}
LogConfig.Type ""
LogConfig.Config null
NetworkMode ""
PortBindings null
RestartPolicy {}
RestartPolicy.Name ""
RestartPolicy.MaximumRetryCount 0
AutoRemove false
VolumeDriver ""
VolumesFrom null
ConsoleSize -
Annotations - >=1.46
CapAdd null
CapDrop null
CgroupnsMode ""
Dns null
DnsOptions null
DnsSearch null
ExtraHosts null
GroupAdd null
IpcMode ""
Cgroup ""
Links null
OomScoreAdj 0
PidMode ""
Privileged false
PublishAllPorts false
ReadonlyRootfs false
SecurityOpt null
UTSMode ""
UsernsMode ""
ShmSize 0
Runtime ""
Isolation ""
CpuShares 0
Memory 0
NanoCpus 0
CgroupParent ""
BlkioWeight 0
BlkioWeightDevice null
BlkioDeviceReadBps null
BlkioDeviceWriteBps null
BlkioDeviceReadIOps null
BlkioDeviceWriteIOps null
CpuPeriod 0
CpuQuota 0
CpuRealtimePeriod 0
CpuRealtimeRuntime 0
CpusetCpus ""
CpusetMems ""
Devices null
DeviceCgroupRules null
DeviceRequests null
KernelMemory 0 <1.42        # omitted when unset from 1.42
KernelMemoryTCP 0 <1.42
MemoryReservation 0
MemorySwap 0
MemorySwappiness null
OomKillDisable null
PidsLimit null
Ulimits null
CpuCount 0
CpuPercent 0
IOMaximumIOps 0
IOMaximumBandwidth 0
MaskedPaths null
ReadonlyPaths null
"#;

/// `network.EndpointSettings`: one entry of `NetworkSettings.Networks`.
const ENDPOINT: &str = r#"
IPAMConfig null
Links null
Aliases null
MacAddress ""
DriverOpts null
GwPriority 0 >=1.48
NetworkID ""
EndpointID ""
Gateway ""
IPAddress ""
IPPrefixLen 0
IPv6Gateway ""
GlobalIPv6Address ""
GlobalIPv6PrefixLen 0
DNSNames null >=1.44
"#;

/// `container.MountPoint`.
const MOUNT_POINT: &str = r#"
Source ""
Destination ""
Mode ""
RW false
Propagation ""
"#;

/// `container.Port` in a list entry.
const PORT: &str = r#"
PrivatePort 0
Type ""
"#;

const STATE: &str = r#"
Status ""
Running false
Paused false
Restarting false
OOMKilled false
Dead false
Pid 0
ExitCode 0
Error ""
StartedAt ""
FinishedAt ""
"#;

const CONTAINER_INSPECT_TOP: &str = r#"
Id ""
Created ""
Path ""
Args null
State {}
Image ""
ResolvConfPath ""
HostnamePath ""
HostsPath ""
LogPath ""
Name ""
RestartCount 0
Driver ""
Platform ""
ImageManifestDescriptor - >=1.48
MountLabel ""
ProcessLabel ""
AppArmorProfile ""
ExecIDs null
HostConfig {}
GraphDriver {}
GraphDriver.Data null
GraphDriver.Name ""
Mounts null
Config {}
NetworkSettings {}
NetworkSettings.Bridge ""
NetworkSettings.SandboxID ""
NetworkSettings.SandboxKey ""
NetworkSettings.Ports null
NetworkSettings.HairpinMode false
NetworkSettings.LinkLocalIPv6Address ""
NetworkSettings.LinkLocalIPv6PrefixLen 0
NetworkSettings.SecondaryIPAddresses null
NetworkSettings.SecondaryIPv6Addresses null
NetworkSettings.EndpointID ""
NetworkSettings.Gateway ""
NetworkSettings.GlobalIPv6Address ""
NetworkSettings.GlobalIPv6PrefixLen 0
NetworkSettings.IPAddress ""
NetworkSettings.IPPrefixLen 0
NetworkSettings.IPv6Gateway ""
NetworkSettings.MacAddress ""
NetworkSettings.Networks null
"#;

/// `GET /containers/{id}/json`.
pub static CONTAINER_INSPECT: Shape = Shape::new(&[
    ("", CONTAINER_INSPECT_TOP),
    ("State", STATE),
    ("HostConfig", HOST_CONFIG),
    ("Config", CONTAINER_CONFIG),
    ("Mounts[]", MOUNT_POINT),
    ("NetworkSettings.Networks.{}", ENDPOINT),
]);

/// `container.Summary` (one entry of `GET /containers/json`).
const CONTAINER_SUMMARY: &str = r#"
Id ""
Names null
Image ""
ImageID ""
ImageManifestDescriptor - >=1.48
Command ""
Created 0
Ports null
SizeRw omitempty
SizeRootFs omitempty
Labels null
State ""
Status ""
HostConfig {}
HostConfig.NetworkMode omitempty
HostConfig.Annotations - >=1.46
NetworkSettings {}
NetworkSettings.Networks null
Mounts null
"#;

/// `GET /containers/json`.
pub static CONTAINER_LIST: Shape = Shape::new(&[
    ("[]", CONTAINER_SUMMARY),
    ("[].Ports[]", PORT),
    ("[].Mounts[]", MOUNT_POINT),
    ("[].NetworkSettings.Networks.{}", ENDPOINT),
]);

const IMAGE_INSPECT_TOP: &str = r#"
Id ""
RepoTags []
RepoDigests []
Parent ""
Comment ""
Created "0001-01-01T00:00:00Z" omitempty>=1.44
Container "" <1.45
ContainerConfig {} <1.45
DockerVersion ""
Author ""
Config {}
Architecture ""
Variant omitempty
Os ""
OsVersion omitempty
Size 0
VirtualSize 0 <1.44
GraphDriver {}
GraphDriver.Data null
GraphDriver.Name ""
RootFS {}
RootFS.Type ""
Metadata {}
Metadata.LastTagTime "0001-01-01T00:00:00Z"
Descriptor - >=1.48
"#;

/// The image `Config` as the legacy `container.Config` (before 1.50); from
/// 1.50 the OCI image config, whose fields are all `omitempty`.
const IMAGE_CONFIG_LEGACY: &str = r#"
Hostname "" <1.50
Domainname "" <1.50
User "" omitempty>=1.50
AttachStdin false <1.50
AttachStdout false <1.50
AttachStderr false <1.50
Tty false <1.50
OpenStdin false <1.50
StdinOnce false <1.50
Env null omitempty>=1.50
Cmd null omitempty>=1.50
Image "" <1.50
Volumes null omitempty>=1.50
WorkingDir "" omitempty>=1.50
Entrypoint null omitempty>=1.50
OnBuild null omitempty>=1.50
Labels null omitempty>=1.50
"#;

/// `GET /images/{name}/json`.
pub static IMAGE_INSPECT: Shape = Shape::new(&[
    ("", IMAGE_INSPECT_TOP),
    ("Config", IMAGE_CONFIG_LEGACY),
    ("ContainerConfig", CONTAINER_CONFIG),
]);

const IMAGE_SUMMARY: &str = r#"
Containers 0
Created 0
Id ""
Labels null emptynull
ParentId ""
RepoDigests null emptynull<1.43
RepoTags null
SharedSize 0
Size 0
VirtualSize 0 <1.44
"#;

/// `GET /images/json`.
pub static IMAGE_LIST: Shape = Shape::new(&[("[]", IMAGE_SUMMARY)]);

/// `GET /images/{name}/history`.
pub static IMAGE_HISTORY: Shape = Shape::new(&[(
    "[]",
    r#"
Comment ""
Created 0
CreatedBy ""
Id ""
Size 0
Tags null emptynull
"#,
)]);

const VOLUME: &str = r#"
CreatedAt omitempty
Driver ""
Labels null emptynull
Mountpoint ""
Name ""
Options null emptynull
Scope ""
"#;

/// `GET /volumes/{name}` (and the answer to a create).
pub static VOLUME_INSPECT: Shape = Shape::new(&[("", VOLUME)]);

/// `GET /volumes`.
pub static VOLUME_LIST: Shape =
    Shape::new(&[("", "Volumes null\nWarnings null"), ("Volumes[]", VOLUME)]);

/// `GET /system/df`.
pub static DISK_USAGE: Shape = Shape::new(&[
    (
        "",
        r#"
LayersSize 0
Images null
Containers null
Volumes null
BuildCache null
BuilderSize 0 <1.42
Volumes[].UsageData {}
Volumes[].UsageData.RefCount 0
Volumes[].UsageData.Size 0
"#,
    ),
    ("Images[]", IMAGE_SUMMARY),
    ("Containers[]", CONTAINER_SUMMARY),
    ("Containers[].Ports[]", PORT),
    ("Containers[].Mounts[]", MOUNT_POINT),
    ("Containers[].NetworkSettings.Networks.{}", ENDPOINT),
    ("Volumes[]", VOLUME),
]);

const NETWORK: &str = r#"
Name ""
Id ""
Created ""
Scope ""
Driver ""
EnableIPv4 false >=1.48
EnableIPv6 false
IPAM {}
IPAM.Driver ""
IPAM.Options null
IPAM.Config null
Internal false
Attachable false
Ingress false
ConfigFrom {}
ConfigFrom.Network ""
ConfigOnly false
Containers null
Options null
Labels null
Containers.{}.Name ""
Containers.{}.EndpointID ""
Containers.{}.MacAddress ""
Containers.{}.IPv4Address ""
Containers.{}.IPv6Address ""
"#;

/// `GET /networks/{id}`.
pub static NETWORK_INSPECT: Shape = Shape::new(&[("", NETWORK)]);

/// `GET /networks`.
pub static NETWORK_LIST: Shape = Shape::new(&[("[]", NETWORK)]);

/// `GET /exec/{id}/json`.
pub static EXEC_INSPECT: Shape = Shape::new(&[(
    "",
    r#"
ID ""
Running false
ExitCode null
ProcessConfig {}
ProcessConfig.tty false
ProcessConfig.entrypoint ""
ProcessConfig.arguments null
ProcessConfig.privileged false
ProcessConfig.user omitempty
OpenStdin false
OpenStderr false
OpenStdout false
CanRemove false
ContainerID ""
DetachKeys ""
Pid 0
"#,
)]);

/// `GET /info`.
pub static INFO: Shape = Shape::new(&[(
    "",
    r#"
ID ""
Containers 0
ContainersRunning 0
ContainersPaused 0
ContainersStopped 0
Images 0
Driver ""
DriverStatus null
Plugins {}
Plugins.Volume null
Plugins.Network null
Plugins.Authorization null
Plugins.Log null
MemoryLimit false
SwapLimit false
KernelMemory false omitempty>=1.42
KernelMemoryTCP false omitempty>=1.42
CpuCfsPeriod false
CpuCfsQuota false
CPUShares false
CPUSet false
PidsLimit false
IPv4Forwarding false
BridgeNfIptables false <1.50
BridgeNfIp6tables false <1.50
Debug false
NFd 0
OomKillDisable false
NGoroutines 0
SystemTime ""
LoggingDriver ""
CgroupDriver ""
NEventsListener 0
KernelVersion ""
OperatingSystem ""
OSVersion ""
OSType ""
Architecture ""
IndexServerAddress ""
RegistryConfig null
RegistryConfig.AllowNondistributableArtifactsCIDRs [] <1.47
RegistryConfig.AllowNondistributableArtifactsHostnames [] <1.47
RegistryConfig.InsecureRegistryCIDRs null
RegistryConfig.IndexConfigs null
RegistryConfig.IndexConfigs.{}.Name ""
RegistryConfig.IndexConfigs.{}.Mirrors null
RegistryConfig.IndexConfigs.{}.Secure false
RegistryConfig.IndexConfigs.{}.Official false
RegistryConfig.Mirrors null
NCPU 0
MemTotal 0
GenericResources null
DockerRootDir ""
HttpProxy ""
HttpsProxy ""
NoProxy ""
Name ""
Labels null
ExperimentalBuild false
ServerVersion ""
Runtimes null
Runtimes.{}.path ""
Runtimes.{}.status - >=1.44
DefaultRuntime ""
Swarm {}
Swarm.NodeID ""
Swarm.NodeAddr ""
Swarm.LocalNodeState ""
Swarm.ControlAvailable false
Swarm.Error ""
Swarm.RemoteManagers null
LiveRestoreEnabled false
Isolation ""
InitBinary ""
ContainerdCommit {}
ContainerdCommit.ID ""
ContainerdCommit.Expected "" <1.49
RuncCommit {}
RuncCommit.ID ""
RuncCommit.Expected "" <1.49
InitCommit {}
InitCommit.ID ""
InitCommit.Expected "" <1.49
SecurityOptions null
CDISpecDirs [] >=1.44
Containerd - >=1.46
FirewallBackend - >=1.49
DiscoveredDevices - >=1.50
Warnings null
"#,
)]);

/// `GET /version`.
pub static VERSION: Shape = Shape::new(&[(
    "",
    r#"
Platform {}
Platform.Name ""
Components null
Components[].Name ""
Components[].Version ""
Version ""
ApiVersion ""
MinAPIVersion omitempty
GitCommit ""
GoVersion ""
Os ""
Arch ""
KernelVersion omitempty
BuildTime omitempty
"#,
)]);

/// `POST /images/prune`.
pub static IMAGE_PRUNE: Shape = Shape::new(&[("", "ImagesDeleted null\nSpaceReclaimed 0")]);

/// `POST /volumes/prune`: dockerd starts from an empty list, not nil.
pub static VOLUME_PRUNE: Shape = Shape::new(&[("", "VolumesDeleted []\nSpaceReclaimed 0")]);

/// Every shape, for the tests that check their texts.
pub const ALL: &[&Shape] = &[
    &CONTAINER_INSPECT,
    &CONTAINER_LIST,
    &IMAGE_INSPECT,
    &IMAGE_LIST,
    &IMAGE_HISTORY,
    &VOLUME_INSPECT,
    &VOLUME_LIST,
    &DISK_USAGE,
    &NETWORK_INSPECT,
    &NETWORK_LIST,
    &EXEC_INSPECT,
    &INFO,
    &VERSION,
    &IMAGE_PRUNE,
    &VOLUME_PRUNE,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiVersion;
    use serde_json::json;

    #[test]
    fn every_shape_parses() {
        for s in ALL {
            s.check().unwrap();
        }
    }

    #[test]
    fn container_inspect_fills_go_zero_values() {
        let mut v = json!({"Id": "x", "HostConfig": {"Runtime": "runc"},
            "NetworkSettings": {"Networks": {"n": {"NetworkID": "i"}}}});
        CONTAINER_INSPECT.apply(&mut v, ApiVersion::new(1, 41));
        assert_eq!(v["HostConfig"]["Runtime"], json!("runc"));
        assert_eq!(v["HostConfig"]["CpuRealtimePeriod"], json!(0));
        assert_eq!(v["HostConfig"]["KernelMemory"], json!(0));
        assert_eq!(
            v["HostConfig"]["LogConfig"],
            json!({"Type": "", "Config": null})
        );
        assert_eq!(v["Config"]["Entrypoint"], json!(null));
        assert_eq!(v["Config"]["Domainname"], json!(""));
        assert_eq!(v["State"]["Pid"], json!(0));
        let ep = &v["NetworkSettings"]["Networks"]["n"];
        assert_eq!(ep["Aliases"], json!(null));
        assert_eq!(ep["NetworkID"], json!("i"));
        assert!(ep.get("GwPriority").is_none() && ep.get("DNSNames").is_none());
        let mut new = json!({"NetworkSettings": {"Networks": {"n": {}}}});
        CONTAINER_INSPECT.apply(&mut new, ApiVersion::new(1, 50));
        assert!(new["HostConfig"].get("KernelMemory").is_none());
        assert_eq!(
            new["NetworkSettings"]["Networks"]["n"]["GwPriority"],
            json!(0)
        );
    }

    #[test]
    fn image_config_is_legacy_before_1_50() {
        let mut old = json!({"Config": {"Cmd": ["sh"]}});
        IMAGE_INSPECT.apply(&mut old, ApiVersion::new(1, 41));
        assert_eq!(old["Config"]["Domainname"], json!(""));
        assert_eq!(old["Config"]["Cmd"], json!(["sh"]));
        assert_eq!(old["ContainerConfig"]["Entrypoint"], json!(null));
        assert_eq!(old["VirtualSize"], json!(0));
        let mut new = json!({"Config": {"Cmd": ["sh"], "Hostname": "", "Env": null, "User": ""},
            "VirtualSize": 3});
        IMAGE_INSPECT.apply(&mut new, ApiVersion::new(1, 50));
        assert_eq!(new["Config"], json!({"Cmd": ["sh"]}));
        assert!(new.get("ContainerConfig").is_none() && new.get("VirtualSize").is_none());
    }

    #[test]
    fn typed_answers_are_shaped_while_serializing() {
        use crate::models::{
            ContainerInspectResponse, EndpointSettings, HostConfig, NetworkSettings,
        };
        let c = ContainerInspectResponse {
            id: Some("x".into()),
            host_config: Some(HostConfig {
                runtime: Some("runc".into()),
                memory: Some(5),
                ..Default::default()
            }),
            network_settings: Some(NetworkSettings {
                networks: Some(
                    [("n".to_string(), EndpointSettings::default())]
                        .into_iter()
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        let b = CONTAINER_INSPECT
            .to_vec(&c, ApiVersion::new(1, 50))
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["HostConfig"]["Runtime"], json!("runc"));
        assert_eq!(v["HostConfig"]["Memory"], json!(5));
        assert_eq!(v["HostConfig"]["Links"], json!(null));
        assert_eq!(v["Config"]["Tty"], json!(false));
        assert_eq!(v["State"]["Status"], json!(""));
        assert_eq!(
            v["NetworkSettings"]["Networks"]["n"]["DNSNames"],
            json!(null)
        );
        assert_eq!(
            v["NetworkSettings"]["Networks"]["n"]["Aliases"],
            json!(null)
        );
        assert!(v["HostConfig"].get("KernelMemory").is_none());
        // Every key once: filled keys do not repeat written ones.
        let text = String::from_utf8(b).unwrap();
        assert_eq!(text.matches("\"Runtime\"").count(), 1);
    }

    #[test]
    fn emptynull_writes_nil_lists_and_maps() {
        let mut v = json!([{"Labels": {}, "RepoDigests": [], "RepoTags": []}]);
        IMAGE_LIST.apply(&mut v, ApiVersion::new(1, 41));
        assert_eq!(v[0]["Labels"], json!(null));
        assert_eq!(v[0]["RepoDigests"], json!(null));
        assert_eq!(v[0]["RepoTags"], json!([]));
        let mut v = json!([{"Labels": {"a": "b"}, "RepoDigests": []}]);
        IMAGE_LIST.apply(&mut v, ApiVersion::new(1, 50));
        assert_eq!(v[0]["Labels"], json!({"a": "b"}));
        assert_eq!(v[0]["RepoDigests"], json!([]));
    }

    #[test]
    fn omitempty_drops_zero_values_only() {
        let mut v = json!([{"SizeRw": 0, "SizeRootFs": 5}]);
        CONTAINER_LIST.apply(&mut v, ApiVersion::new(1, 41));
        assert!(v[0].get("SizeRw").is_none());
        assert_eq!(v[0]["SizeRootFs"], json!(5));
    }
}
