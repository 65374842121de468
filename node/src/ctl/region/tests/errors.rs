//! Bad documents: each error names the file, the document and the field's path.

use super::error;

#[test]
fn bad_documents_name_the_field() {
    const V: &str = "apiVersion: networking.ferrinet.dev/v1alpha1\n";
    let net = |spec: &str| format!("{V}kind: Network\nmetadata: {{name: n}}\nspec: {spec}\n");
    let ni =
        |spec: &str| format!("{V}kind: NetworkInterface\nmetadata: {{name: n}}\nspec: {spec}\n");
    let lb = |spec: &str| format!("{V}kind: LoadBalancer\nmetadata: {{name: n}}\nspec: {spec}\n");
    let pol = |spec: &str| format!("{V}kind: NetworkPolicy\nmetadata: {{name: n}}\nspec: {spec}\n");
    #[rustfmt::skip]
    let cases: Vec<(String, &str)> = vec![
        (net("{prefixes: [10.0.0.0/8]}"), "t.yaml: document 1: spec: unknown field `prefixes`, expected one of `prefix`, `subnets`, `peerings`, `vni`, `providerID`, `incomingPeerings`"),
        (net("{prefix: 10.0.0.0/33}"), "t.yaml: document 1: spec.prefix: \"10.0.0.0/33\" is not a prefix (ADDRESS/LENGTH, like 10.0.0.0/24)"),
        (net("{vni: -1}"), "t.yaml: document 1: spec.vni: invalid type: integer `-1`, expected u32"),
        (net("{subnets: [{cidr: 10.0.0.0/24, allocationRanges: [{start: 10.0.0.1, end: x}]}]}"), "t.yaml: document 1: spec.subnets[0].allocationRanges[0].end: \"x\" is not an IP address"),
        (net("{subnets: [{cidr: 10.0.0.0/24, excludeAddresses: [10.0.0.1, 10.0.0.256]}]}"), "t.yaml: document 1: spec.subnets[0].excludeAddresses[1]: \"10.0.0.256\" is not an IP address"),
        (net("{subnets: [{cidr: 10.0.0.0/24, routes: [{destination: 0.0.0.0/0, nexthop: ''}]}]}"), "t.yaml: document 1: spec.subnets[0].routes[0].nexthop: \"\" is not an IP address"),
        (net("{subnets: [{cidr: 10.0.0.0/24, gateway: 10.0.0.0/24}]}"), "t.yaml: document 1: spec.subnets[0].gateway: \"10.0.0.0/24\" is not an IP address"),
        (net("{peerings: [{name: p, networkRef: {name: b}, prefixes: [x]}]}"), "t.yaml: document 1: spec.peerings[0].prefixes[0]: \"x\" is not a prefix (ADDRESS/LENGTH, like 10.0.0.0/24)"),
        (net("{peerings: [{networkRef: {name: b}}]}"), "t.yaml: document 1: spec.peerings[0]: missing field `name`"),
        (net("{peerings: [{name: p, networkRef: {name: b, kind: Network}}]}"), "t.yaml: document 1: spec.peerings[0].networkRef: unknown field `kind`, expected `name` or `namespace`"),
        (format!("{}foo: 1\n", net("{}")), "t.yaml: document 1: unknown field `foo`, expected one of `apiVersion`, `kind`, `metadata`, `spec`, `status`"),
        (format!("{V}kind: Network\nmetadata: {{name: n, finalizers: [x]}}\n"), "t.yaml: document 1: metadata: unknown field `finalizers`"),
        (format!("{V}kind: Network\nmetadata: {{labels: {{a: b}}}}\n"), "t.yaml: document 1: metadata.name: required"),
        (format!("{V}kind: Network\nmetadata: {{name: Net_A}}\n"), "t.yaml: document 1: metadata.name: \"Net_A\" is not a DNS label"),
        (format!("{V}kind: Network\n"), "t.yaml: document 1: missing field `metadata`"),
        ("kind: Network\nmetadata: {name: n}\n".into(), "t.yaml: document 1: missing field `apiVersion`"),
        (format!("{V}kind: Network\nkind: Network\nmetadata: {{name: n}}\n"), "t.yaml: document 1: duplicate field `kind`"),
        (ni("{ips: [{value: 10.0.0.300}]}"), "t.yaml: document 1: spec.ips[0].value: \"10.0.0.300\" is not an IP address"),
        (ni("{ips: [10.0.0.3]}"), "t.yaml: document 1: spec.ips[0]: invalid type: string \"10.0.0.3\", expected struct IpValue"),
        (ni("{ipFamilies: [IPv5]}"), "t.yaml: document 1: spec.ipFamilies[0]: \"IPv5\": expected IPv4 or IPv6"),
        (ni("{virtualIP: {}}"), "t.yaml: document 1: spec.virtualIP: give exactly one of virtualIPRef and ephemeral"),
        (ni("{virtualIP: {virtualIPRef: {name: v}, ephemeral: {ipFamily: IPv4}}}"), "t.yaml: document 1: spec.virtualIP: give exactly one of virtualIPRef and ephemeral"),
        (ni("{virtualIP: {ephemeral: {ipFamily: v4}}}"), "t.yaml: document 1: spec.virtualIP.ephemeral.ipFamily: \"v4\": expected IPv4 or IPv6"),
        (ni("{virtualIP: {ephemeral: {}}}"), "t.yaml: document 1: spec.virtualIP.ephemeral: missing field `ipFamily`"),
        (ni("{networkRef: {name: a}, targetRef: {name: a}}"), "t.yaml: document 1: spec.targetRef: give networkRef or targetRef, not both"),
        (ni("{targetRef: {kind: Machine, name: a}}"), "t.yaml: document 1: spec.targetRef.kind: \"Machine\": a NetworkInterface targets a Network"),
        (ni("{hostname: web_1}"), "t.yaml: document 1: spec.hostname: \"web_1\" is not a DNS label"),
        (ni("{meteringRate: {total: 1}}"), "t.yaml: document 1: spec.meteringRate: unknown field `total`, expected `totalRate` or `publicRate`"),
        (ni("{prefixes: [10.0.0.0]}"), "t.yaml: document 1: spec.prefixes[0]: \"10.0.0.0\" is not a prefix"),
        (lb("{type: External}"), "t.yaml: document 1: spec.type: \"External\": expected Public or Internal"),
        (lb("{ports: [{protocol: SCTP, port: 80}]}"), "t.yaml: document 1: spec.ports[0].protocol: SCTP is not supported (dpservice handles TCP and UDP)"),
        (lb("{ports: [{port: 80}, {port: 0}]}"), "t.yaml: document 1: spec.ports[1].port: 0: must be 1 to 65535"),
        (lb("{ports: [{port: 80, endPort: 79}]}"), "t.yaml: document 1: spec.ports[0].endPort: 79: must be 80 to 65535"),
        (lb("{ports: [{port: 80, end: 81}]}"), "t.yaml: document 1: spec.ports[0]: unknown field `end`, expected one of `protocol`, `port`, `endPort`"),
        (lb("{networkInterfaceSelector: {matchExpressions: [{key: a, operator: Equals, values: [b]}]}}"), "t.yaml: document 1: spec.networkInterfaceSelector.matchExpressions[0].operator: \"Equals\": expected In or NotIn or Exists or DoesNotExist"),
        (lb("{networkInterfaceSelector: {matchExpressions: [{key: a, operator: In}]}}"), "t.yaml: document 1: spec.networkInterfaceSelector.matchExpressions[0].values: required with In"),
        (lb("{networkInterfaceSelector: {matchExpressions: [{key: a, operator: Exists, values: [b]}]}}"), "t.yaml: document 1: spec.networkInterfaceSelector.matchExpressions[0].values: must be empty with Exists"),
        (lb("{networkInterfaceSelector: {matchExpressions: [{key: '', operator: Exists}]}}"), "t.yaml: document 1: spec.networkInterfaceSelector.matchExpressions[0].key: required"),
        (pol("{policyTypes: [Inbound]}"), "t.yaml: document 1: spec.policyTypes[0]: \"Inbound\": expected Ingress or Egress"),
        (pol("{ingress: [{from: [{}]}]}"), "t.yaml: document 1: spec.ingress[0].from[0]: give exactly one of ipBlock and objectSelector"),
        (pol("{ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, objectSelector: {kind: LoadBalancer}}]}]}"), "t.yaml: document 1: spec.ingress[0].from[0]: give exactly one of ipBlock and objectSelector"),
        (pol("{egress: [{to: [{objectSelector: {kind: Machine}}]}]}"), "t.yaml: document 1: spec.egress[0].to[0].objectSelector.kind: \"Machine\": expected NetworkInterface or LoadBalancer"),
        (pol("{egress: [{to: [{objectSelector: {matchLabels: {a: b}}}]}]}"), "t.yaml: document 1: spec.egress[0].to[0].objectSelector.kind: required: NetworkInterface or LoadBalancer"),
        (pol("{egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [y]}}]}]}"), "t.yaml: document 1: spec.egress[0].to[0].ipBlock.except[0]: \"y\" is not a prefix"),
        (pol("{egress: [{from: []}]}"), "t.yaml: document 1: spec.egress[0]: unknown field `from`, expected `to` or `ports`"),
        (pol("{ingress: [{ports: [{port: 70000}]}]}"), "t.yaml: document 1: spec.ingress[0].ports[0].port: 70000: must be 1 to 65535"),
        (format!("{V}kind: VirtualIP\nmetadata: {{name: n}}\nspec: {{type: Private}}\n"), "t.yaml: document 1: spec.type: \"Private\": expected Public"),
        (format!("{V}kind: NATGateway\nmetadata: {{name: n}}\nspec: {{portsPerNetworkInterface: many}}\n"), "t.yaml: document 1: spec.portsPerNetworkInterface: invalid type: string \"many\", expected u32"),
        (format!("{V}kind: PublicPrefix\nmetadata: {{name: n}}\nspec: {{selector: {{matchLabels: [a]}}}}\n"), "t.yaml: document 1: spec.selector.matchLabels: invalid type: sequence, expected a map"),
        (format!("{V}kind: Node\nmetadata: {{name: n}}\nspec: {{underlayPrefix: 'fc00::'}}\n"), "t.yaml: document 1: spec.underlayPrefix: \"fc00::\" is not a prefix"),
        (format!("{}---\n{}", net("{}"), net("{vni: x}")), "t.yaml: document 2: spec.vni: invalid type: string \"x\", expected u32"),
        // The spec before the kind: the spec is buffered, its errors name `spec`.
        (format!("{V}spec: {{bogus: 1}}\nkind: Network\nmetadata: {{name: n}}\n"), "t.yaml: document 1: spec: unknown field `bogus`"),
        ("- [1]".into(), "t.yaml: document 1: .[0]: invalid type: sequence, expected an object {apiVersion, kind, metadata, spec}"),
        ("just text".into(), "t.yaml: document 1: invalid type: string \"just text\", expected an object {apiVersion, kind, metadata, spec} or a list of them"),
    ];
    let mut wrong = Vec::new();
    for (text, want) in cases {
        let got = error(&text);
        if !got.starts_with(want) {
            wrong.push(format!("\n{text}\n got: {got}\nwant: {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
