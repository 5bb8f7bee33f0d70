//! Wire compatibility with etcd's own protos.
//!
//! Compiles etcd 3.4's `.proto` files (Debian's `golang-etcd-server-dev`) with
//! `protox` and compares them with `keel_proto::FILE_DESCRIPTOR_SET`: every
//! message, field (name, number, label, type, oneof, JSON name, packing), enum
//! value, service and rpc (types and streaming). Anything of etcd's that we
//! lack or define differently is a failure; anything we define beyond etcd 3.4
//! is a failure unless it is listed in `LATER_ADDITIONS` with exactly the shape
//! later etcd releases gave it.
//!
//! Run with `-- --nocapture` to see the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet};

/// The packages that make up etcd's client API.
const PACKAGES: [&str; 5] = [
    "mvccpb",
    "authpb",
    "etcdserverpb",
    "v3lockpb",
    "v3electionpb",
];

/// etcd's files, relative to the include roots below.
const ETCD_FILES: [&str; 3] = [
    "etcd/etcdserver/etcdserverpb/rpc.proto",
    "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
    "etcd/etcdserver/api/v3election/v3electionpb/v3election.proto",
];

/// What etcd 3.5 and 3.6 added to the API, in the notation of `describe`.
/// Each entry is checked: it must be in our protos with exactly this shape.
const LATER_ADDITIONS: &[(&str, &str)] = &[
    // etcd 3.5
    (
        "etcdserverpb.Maintenance/Downgrade",
        "rpc .etcdserverpb.DowngradeRequest -> .etcdserverpb.DowngradeResponse",
    ),
    (
        "etcdserverpb.Auth/AuthStatus",
        "rpc .etcdserverpb.AuthStatusRequest -> .etcdserverpb.AuthStatusResponse",
    ),
    ("etcdserverpb.DowngradeRequest", "message"),
    (
        "etcdserverpb.DowngradeRequest.action",
        "field 1 optional enum .etcdserverpb.DowngradeRequest.DowngradeAction json=action",
    ),
    (
        "etcdserverpb.DowngradeRequest.version",
        "field 2 optional string json=version",
    ),
    ("etcdserverpb.DowngradeRequest.DowngradeAction", "enum"),
    (
        "etcdserverpb.DowngradeRequest.DowngradeAction.VALIDATE",
        "value 0",
    ),
    (
        "etcdserverpb.DowngradeRequest.DowngradeAction.ENABLE",
        "value 1",
    ),
    (
        "etcdserverpb.DowngradeRequest.DowngradeAction.CANCEL",
        "value 2",
    ),
    ("etcdserverpb.DowngradeResponse", "message"),
    (
        "etcdserverpb.DowngradeResponse.header",
        "field 1 optional message .etcdserverpb.ResponseHeader json=header",
    ),
    (
        "etcdserverpb.DowngradeResponse.version",
        "field 2 optional string json=version",
    ),
    ("etcdserverpb.AuthStatusRequest", "message"),
    ("etcdserverpb.AuthStatusResponse", "message"),
    (
        "etcdserverpb.AuthStatusResponse.header",
        "field 1 optional message .etcdserverpb.ResponseHeader json=header",
    ),
    (
        "etcdserverpb.AuthStatusResponse.enabled",
        "field 2 optional bool json=enabled",
    ),
    (
        "etcdserverpb.AuthStatusResponse.authRevision",
        "field 3 optional uint64 json=authRevision",
    ),
    (
        "etcdserverpb.MemberListRequest.linearizable",
        "field 1 optional bool json=linearizable",
    ),
    (
        "etcdserverpb.AuthUserAddRequest.hashedPassword",
        "field 4 optional string json=hashedPassword",
    ),
    (
        "etcdserverpb.AuthUserChangePasswordRequest.hashedPassword",
        "field 3 optional string json=hashedPassword",
    ),
    // etcd 3.6
    (
        "etcdserverpb.HashKVResponse.hash_revision",
        "field 4 optional int64 json=hashRevision",
    ),
    (
        "etcdserverpb.SnapshotResponse.version",
        "field 4 optional string json=version",
    ),
    (
        "etcdserverpb.StatusResponse.storageVersion",
        "field 11 optional string json=storageVersion",
    ),
    (
        "etcdserverpb.StatusResponse.dbSizeQuota",
        "field 12 optional int64 json=dbSizeQuota",
    ),
    (
        "etcdserverpb.StatusResponse.downgradeInfo",
        "field 13 optional message .etcdserverpb.DowngradeInfo json=downgradeInfo",
    ),
    ("etcdserverpb.DowngradeInfo", "message"),
    (
        "etcdserverpb.DowngradeInfo.enabled",
        "field 1 optional bool json=enabled",
    ),
    (
        "etcdserverpb.DowngradeInfo.targetVersion",
        "field 2 optional string json=targetVersion",
    ),
];

/// Every wire-relevant fact of a descriptor set, restricted to `PACKAGES`:
/// a path (`pkg.Message.field`, `pkg.Enum.VALUE`, `pkg.Service/Method`) and
/// its shape.
type Facts = BTreeMap<String, String>;

fn describe(fds: &FileDescriptorSet) -> Facts {
    let mut facts = Facts::new();
    for file in &fds.file {
        let package = file.package();
        if !PACKAGES.contains(&package) {
            continue;
        }
        // The package's syntax is a fact of its own: proto2 and proto3 differ
        // in presence and packing.
        let syntax_path = format!("{package} (syntax)");
        let previous = facts.insert(syntax_path, file.syntax().to_owned());
        assert!(
            previous.is_none() || previous.as_deref() == Some(file.syntax()),
            "package {package} mixes syntaxes"
        );
        for message in &file.message_type {
            describe_message(&mut facts, package, message);
        }
        for enumeration in &file.enum_type {
            describe_enum(&mut facts, package, enumeration);
        }
        for service in &file.service {
            let service_path = format!("{package}.{}", service.name());
            insert_unique(&mut facts, service_path.clone(), "service".to_owned());
            for method in &service.method {
                let stream = |on: bool| if on { "stream " } else { "" };
                let shape = format!(
                    "rpc {}{} -> {}{}",
                    stream(method.client_streaming()),
                    method.input_type(),
                    stream(method.server_streaming()),
                    method.output_type()
                );
                insert_unique(
                    &mut facts,
                    format!("{service_path}/{}", method.name()),
                    shape,
                );
            }
        }
    }
    facts
}

fn describe_message(facts: &mut Facts, scope: &str, message: &DescriptorProto) {
    let path = format!("{scope}.{}", message.name());
    insert_unique(facts, path.clone(), "message".to_owned());
    for field in &message.field {
        insert_unique(
            facts,
            format!("{path}.{}", field.name()),
            describe_field(message, field),
        );
    }
    for nested in &message.nested_type {
        describe_message(facts, &path, nested);
    }
    for enumeration in &message.enum_type {
        describe_enum(facts, &path, enumeration);
    }
}

fn describe_field(message: &DescriptorProto, field: &FieldDescriptorProto) -> String {
    let label = match field.label() {
        Label::Optional => "optional",
        Label::Required => "required",
        Label::Repeated => "repeated",
    };
    let kind = match field.r#type() {
        Type::Message => format!("message {}", field.type_name()),
        Type::Enum => format!("enum {}", field.type_name()),
        Type::Group => format!("group {}", field.type_name()),
        scalar => scalar
            .as_str_name()
            .trim_start_matches("TYPE_")
            .to_lowercase(),
    };
    let mut shape = format!("field {} {label} {kind}", field.number());
    if let Some(index) = field.oneof_index {
        let oneof = usize::try_from(index)
            .ok()
            .and_then(|i| message.oneof_decl.get(i))
            .map_or("<bad oneof index>", |decl| decl.name());
        shape.push_str(&format!(" oneof={oneof}"));
    }
    if field.proto3_optional() {
        shape.push_str(" proto3_optional");
    }
    if let Some(json_name) = &field.json_name {
        shape.push_str(&format!(" json={json_name}"));
    }
    if let Some(packed) = field.options.as_ref().and_then(|options| options.packed) {
        shape.push_str(&format!(" packed={packed}"));
    }
    shape
}

fn describe_enum(facts: &mut Facts, scope: &str, enumeration: &EnumDescriptorProto) {
    let path = format!("{scope}.{}", enumeration.name());
    insert_unique(facts, path.clone(), "enum".to_owned());
    for value in &enumeration.value {
        insert_unique(
            facts,
            format!("{path}.{}", value.name()),
            format!("value {}", value.number()),
        );
    }
}

fn insert_unique(facts: &mut Facts, path: String, shape: String) {
    let previous = facts.insert(path.clone(), shape);
    assert!(previous.is_none(), "{path} is described twice");
}

/// Every difference between etcd's facts and ours, one line each; empty when
/// ours are etcd's plus exactly `LATER_ADDITIONS`.
fn differences(etcd: &Facts, ours: &Facts) -> Vec<String> {
    let additions: BTreeMap<&str, &str> = LATER_ADDITIONS.iter().copied().collect();
    assert_eq!(
        additions.len(),
        LATER_ADDITIONS.len(),
        "LATER_ADDITIONS lists a path twice"
    );
    let mut report = Vec::new();
    for (path, shape) in etcd {
        match ours.get(path) {
            None => report.push(format!("missing: {path}: etcd has `{shape}`")),
            Some(our_shape) if our_shape != shape => report.push(format!(
                "differs: {path}: etcd has `{shape}`, we have `{our_shape}`"
            )),
            Some(_) => {}
        }
    }
    for (path, our_shape) in ours {
        if etcd.contains_key(path) {
            continue;
        }
        match additions.get(path.as_str()) {
            None => report.push(format!(
                "extra: {path}: we have `{our_shape}`, etcd 3.4 has nothing"
            )),
            Some(expected) if expected != our_shape => report.push(format!(
                "differs: {path}: later etcd has `{expected}`, we have `{our_shape}`"
            )),
            Some(_) => {}
        }
    }
    for (path, expected) in &additions {
        if etcd.contains_key(*path) {
            report.push(format!(
                "stale addition: {path} is already in etcd 3.4's protos"
            ));
        } else if !ours.contains_key(*path) {
            report.push(format!("missing: {path}: later etcd has `{expected}`"));
        }
    }
    report
}

fn our_descriptors() -> FileDescriptorSet {
    FileDescriptorSet::decode(keel_proto::FILE_DESCRIPTOR_SET)
        .expect("FILE_DESCRIPTOR_SET is written by build.rs from a FileDescriptorSet")
}

fn gocode_src() -> PathBuf {
    std::env::var_os("KEEL_GOCODE_SRC")
        .map_or_else(|| PathBuf::from("/usr/share/gocode/src"), PathBuf::from)
}

fn etcd_include_roots(gocode: &Path) -> [PathBuf; 3] {
    [
        // Holds `etcd/...`, the prefix etcd's own imports use.
        gocode.join("go.etcd.io"),
        // Holds `gogoproto/gogo.proto`.
        gocode.join("github.com/gogo/protobuf"),
        // Holds `google/api/annotations.proto`.
        gocode.join("github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis"),
    ]
}

#[test]
fn our_protos_match_etcd_3_4_plus_later_additions() {
    let gocode = gocode_src();
    let roots = etcd_include_roots(&gocode);
    assert!(
        roots[0].join(ETCD_FILES[0]).exists(),
        "etcd's protos are not under {} (scripts/install-deps installs golang-etcd-server-dev)",
        gocode.display()
    );
    let etcd =
        describe(&protox::compile(ETCD_FILES, &roots).expect("etcd's protos compile with protox"));
    let ours = describe(&our_descriptors());

    let count = |facts: &Facts, kind: &str| {
        facts
            .values()
            .filter(|shape| shape.split(' ').next() == Some(kind))
            .count()
    };
    for kind in ["message", "field", "enum", "value", "service", "rpc"] {
        eprintln!(
            "{kind}: etcd 3.4 has {}, Keel has {}",
            count(&etcd, kind),
            count(&ours, kind)
        );
    }
    for package in PACKAGES {
        assert!(
            etcd.contains_key(&format!("{package} (syntax)")),
            "etcd's compiled protos lack package {package}"
        );
    }
    let report = differences(&etcd, &ours);
    for line in &report {
        eprintln!("{line}");
    }
    assert!(
        report.is_empty(),
        "{} differences from etcd's protos (listed above)",
        report.len()
    );
    eprintln!(
        "no differences: {} of etcd 3.4's facts match, plus {} later additions",
        etcd.len(),
        LATER_ADDITIONS.len()
    );
}

/// The comparison itself must notice each kind of difference; checked on our
/// own descriptors so that it runs without etcd's sources.
#[test]
fn comparison_reports_each_kind_of_difference() {
    let ours = describe(&our_descriptors());
    let etcd_like: Facts = ours
        .iter()
        .filter(|(path, _)| !LATER_ADDITIONS.iter().any(|(added, _)| added == path))
        .map(|(path, shape)| (path.clone(), shape.clone()))
        .collect();
    assert_eq!(differences(&etcd_like, &ours), Vec::<String>::new());

    let mut renumbered = our_descriptors();
    let rpc = renumbered
        .file
        .iter_mut()
        .find(|file| file.package() == "etcdserverpb")
        .expect("etcdserverpb is compiled");
    let range_request = rpc
        .message_type
        .iter_mut()
        .find(|message| message.name() == "RangeRequest")
        .expect("RangeRequest exists");
    range_request.field[0].number = Some(99);
    let report = differences(&etcd_like, &describe(&renumbered));
    assert_eq!(report.len(), 1, "{report:?}");
    assert!(
        report[0].starts_with("differs: etcdserverpb.RangeRequest.key:"),
        "{report:?}"
    );

    let mut without_status = our_descriptors();
    let rpc = without_status
        .file
        .iter_mut()
        .find(|file| file.package() == "etcdserverpb")
        .expect("etcdserverpb is compiled");
    let maintenance = rpc
        .service
        .iter_mut()
        .find(|service| service.name() == "Maintenance")
        .expect("Maintenance exists");
    maintenance
        .method
        .retain(|method| method.name() != "Status");
    let report = differences(&etcd_like, &describe(&without_status));
    assert_eq!(
        report,
        vec![format!(
            "missing: etcdserverpb.Maintenance/Status: etcd has `{}`",
            ours["etcdserverpb.Maintenance/Status"]
        )]
    );

    let mut streaming = our_descriptors();
    let rpc = streaming
        .file
        .iter_mut()
        .find(|file| file.package() == "etcdserverpb")
        .expect("etcdserverpb is compiled");
    let kv = rpc
        .service
        .iter_mut()
        .find(|service| service.name() == "KV")
        .expect("KV exists");
    kv.method[0].server_streaming = Some(true);
    let report = differences(&etcd_like, &describe(&streaming));
    assert_eq!(report.len(), 1, "{report:?}");
    assert!(
        report[0].contains("-> stream .etcdserverpb.RangeResponse"),
        "{report:?}"
    );

    let mut extra = etcd_like.clone();
    extra.insert(
        "etcdserverpb.PutRequest.bogus".to_owned(),
        "field 42 optional bool json=bogus".to_owned(),
    );
    let report = differences(&extra, &ours);
    assert_eq!(
        report,
        vec![
            "missing: etcdserverpb.PutRequest.bogus: etcd has `field 42 optional bool json=bogus`"
                .to_owned()
        ]
    );
    let report = differences(&etcd_like, &{
        let mut ours_extra = ours.clone();
        ours_extra.insert(
            "etcdserverpb.PutRequest.bogus".to_owned(),
            "field 42 optional bool".to_owned(),
        );
        ours_extra
    });
    assert_eq!(report, vec![
        "extra: etcdserverpb.PutRequest.bogus: we have `field 42 optional bool`, etcd 3.4 has nothing".to_owned()
    ]);
}
