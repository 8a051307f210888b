// Package cri tails the Kubernetes container logs that the kubelet and
// the CRI runtime (containerd, CRI-O) write,
// <root>/<namespace>_<pod>_<uid>/<container>/<restart>.log with the
// kubelet's rotations <restart>.log.<YYYYMMDD-hhmmss>, and hands each line
// to the pipeline as an event.
//
// The file following (discovery, fingerprints, rotation, offsets, turns,
// partial-line joining, the hand-off and the checkpoint) is package tail,
// as for the docker input; this package supplies the kubelet's layout,
// the CRI line format and the metadata a log path carries.
//
// # Invariants
//
//   - Every guarantee of package tail holds: at least once (an offset is
//     committed only after Writer.Flush accepted every line before it, and
//     written to offsets.json only after Router.Sync), identity by
//     fingerprint (never by path or inode alone), rotation by rename,
//     rotations made while stopped read oldest first, lost data counted,
//     bounded memory, atomic offsets file.
//   - Layout (layout.go): container directories two levels below the root.
//     In each, <n>.log files by restart count and each one's rotations
//     <n>.log.<YYYYMMDD-hhmmss> by timestamp, oldest first: 0.log.<t1>,
//     0.log.<t2>, 0.log, 1.log.<t3>, 1.log. Only the newest, if it is a
//     live <n>.log, is rank 0 (may grow); every other file is read to its
//     end and closed, the renamed one before the new live file is read.
//     Compressed rotations (.gz), the kubelet's temporary files (.tmp) and
//     every other name are never read.
//   - Format (parse.go): "<time> <stream> <tags> <content>"; see Parsing.
//     Parsing does not allocate; a line longer than the read buffer keeps
//     its header and the first MaxLineBytes of its content and is never
//     held whole.
//   - Metadata (record.go): namespace, pod name, pod uid and container
//     name come from the path (no Kubernetes API call), fixed per source.
//     With the kubernetes section, the rest (labels, annotations, host,
//     pod IP, image, owner, namespace labels) comes from the agent's one
//     cache of its node's pods (internal/kube, a list+watch per agent);
//     see Kubernetes metadata.
//   - Namespaces filtered out (IncludeNamespaces, ExcludeNamespaces,
//     path.Match patterns; exclude wins) are never watched, listed or
//     opened (tail.SourceFilter); their offsets entries are dropped.
//
// # Record layout
//
// Each event's Time is the line's timestamp (any zone offset, converted to
// UTC nanoseconds); a joined line has its first piece's. Its Record is a
// msgpack map with the docker input's conventions and the "kubernetes"
// map of Fluent Bit's kubernetes filter (formats.md §7.2):
//
//	"log"        str  the message; P pieces joined up to their F; with
//	                  multiline, a group's lines joined with "\n"; cut
//	                  to MaxLineBytes (on a UTF-8 boundary). For a
//	                  malformed line: the raw line (never joined).
//	"stream"     str  "stdout" or "stderr" ("" for a malformed line)
//	"kubernetes" map  "namespace_name", "pod_name", "pod_id" (the uid),
//	                  "container_name", from the path ("" where an old
//	                  kubelet's <uid>/ directory does not say, unless
//	                  the API does); with the kubernetes section also:
//	    "host"            str  the node (the pod's spec.nodeName; before
//	                           the pod is known, node_name)
//	    "pod_ip"          str  status.podIP, once it has one
//	    "container_image" str  the container's spec image
//	    "container_hash"  str  its status imageID, once it ran
//	    "labels"          map  the pod's labels (include_labels)
//	    "annotations"     map  its annotations (include_annotations)
//	    "owner"           map  {"kind", "name"}: the workload (a
//	                           ReplicaSet <deploy>-<hash> as Deployment
//	                           <deploy>; StatefulSet, DaemonSet, Job as
//	                           they are); absent for a bare pod
//	    "ownerReferences" arr  [{"apiVersion", "kind", "name", "uid",
//	                           "controller"}], the raw references
//	                           (owner_references; Fluent Bit's field)
//	"kubernetes_namespace" map  {"labels": {...}}: the namespace's labels
//	                  (namespace_labels; Fluent Bit's key), once known
//	<field>...   any  with ParseJSON, when "log" is one JSON object: its
//	                  top-level fields, as the docker input merges them;
//	                  "log", "stream", "kubernetes" and
//	                  "kubernetes_namespace" are not overwritten.
//
// The keys are those of Fluent Bit's kubernetes filter (formats.md §7.2),
// so dashboards built on it keep working; "owner" is an addition, and
// "docker_id" is left out: a source is a container directory whose
// <n>.log files span restarts, so one container id would be wrong for the
// lines of earlier restarts.
//
// # Parsing
//
// The timestamp is RFC 3339 with 0 to 9 fraction digits and any offset
// (containerd writes the node's local zone). The stream must be "stdout"
// or "stderr". Of the ":"-separated tags only the first is read: P is a
// partial line, F a full one or the last piece; tail joins the pieces per
// stream (stdout and stderr interleave independently), emits them at the
// F with the first piece's time, and emits a group with no continuation
// for PartialFlushTimeout as it is. Joined lines longer than MaxLineBytes
// are cut and counted in sluice_input_truncated_lines_total. An F line's
// trailing "\r" is dropped (CRLF); "... F " is an empty line.
//
// A tags field whose first tag is neither P nor F (a line of the older
// untagged format "<time> <stream> <content>") is a full line whose
// content is everything after the stream. A line without a valid
// timestamp, or without a stream field, is malformed: counted in
// sluice_input_parse_errors_total, logged (rate-limited) and emitted raw
// with an empty stream and the read time; reading goes on.
//
// # Multiline
//
// With multiline (CRIInput.Multiline, the "multiline:" section), the lines
// of one message, such as a stack trace, are joined into one event per
// container and stream, after the P pieces are joined and before the
// hand-off (package tail, "Multiline"; the rules are internal/multiline's:
// java, go, python, ruby, javascript, and custom start/continue regexps).
// The joiner gets each line's message (an F line without its "\r"); the
// event's "log" is the group's lines joined with "\n", its Time the first
// line's, cut to max_bytes (default min(1 MiB, MaxLineBytes)). The
// committed offset never passes the start of a line held in an open group:
// after a restart or a crash the group is read again and emitted once,
// whole, and the other stream's lines handed off meanwhile are not emitted
// twice. A group is emitted when a line does not continue it,
// flush_timeout (default 1 s) after its last line, or when its file is
// finished: a trace cut by a rotation is two events, the first at the
// rotated file's end. A group held when the agent stops is not emitted; it
// is read again at the next start.
//
// # Tags
//
// CRIInput.Tag is compiled once (internal/record with AllowKube):
// {namespace}, {pod}, {pod_id}, {container}, {stream} and {field:KEY}
// (a top-level field of a JSON-object payload, whether or not ParseJSON
// is set), and with the kubernetes section {label:KEY} and
// {annotation:KEY} (a pod label or annotation; "unknown" until the pod is
// known). Routes match tags, so a route by label or annotation is a tag
// that holds it: tag "kube.{annotation:logging.sluice.dev/type}.{namespace}"
// and match "kube.audit.**". Without {field:KEY} the rendered tag is
// cached per container and stream, and rendered again when the pod's
// metadata changes.
//
// # Kubernetes metadata
//
// The kubernetes section (config.CRIKubernetes) joins the agent's shared
// pod cache at Run (kube.Acquire: one list and one watch of the pods of
// node_name, default $NODE_NAME, and of the namespaces, whatever the
// number of cri inputs). Records never wait on the API:
//
//   - Each event compares the cache's generation (one atomic load) with
//     the one its container last saw; only when it moved is the pod
//     looked up (by the uid in the path) and the record's fixed part and
//     cached tags rebuilt. Enrichment costs no allocation per line
//     (BenchmarkReadParseAdd/kube against /plain).
//   - A pod the cache does not know yet (at start before the first
//     list, or created since and not delivered by the watch yet) waits
//     for its metadata, at most metadata_wait (default 2s) from when its
//     directory was first found, so that its first lines are enriched
//     (container.Hold, a tail.Holder): only its reads wait, the other pods
//     are read meanwhile and its files are tracked and checkpointed as
//     usual. After the wait its lines are read with the path's metadata
//     (and host) and enriched once the watch delivers the pod. A static
//     pod (its directory has the kubelet's config hash as uid) is found by
//     its mirror pod's kubernetes.io/config.mirror annotation.
//   - API down: lines keep flowing with the metadata last known (or the
//     path's); the client retries with back-off and the lines after its
//     return are enriched. A pod deleted from the cache keeps the metadata
//     its lines had.
//   - Exclusion: a pod annotated <exclude_annotation>: "true" (default
//     sluice.dev/exclude), or <exclude_annotation>-<container>: "true"
//     for one container, is not read (tail.SourceFilter). Decided when the
//     source is scanned with the pod known, and again when its wait for
//     the pod ends (an excluded pod is then dropped unread); lines read
//     after a wait that ran out are shipped; a pod annotated while it is
//     being read is left at the next full scan, its open files finished
//     first.
//
// # Metrics
//
// Those of package tail, with the label input="<id>" (with multiline:
// sluice_input_multiline_groups_total, _truncated_total, _timeouts_total).
//
// # Known limitations
//
// Those of package tail, and:
//
//   - The kubelet gzips every rotation but the newest at each rotation. A
//     rotated file already open is read to its end through its descriptor
//     even after that; one compressed before it was finished (two
//     rotations while the agent was stopped, or faster than it reads) is
//     lost, and counted (an estimate, from its last known size), never
//     read from the .gz.
//   - A line split across a rotation (its P pieces in two files) is
//     emitted as two lines; so is a multiline group (two events).
//   - Kubelet with cri-dockerd: <n>.log is a symlink into
//     /var/lib/docker/containers holding Docker json-file lines. The link
//     is refused (its target is outside the root) and that format is not
//     parsed; use the docker input on such nodes.
//   - Metadata waits only at start (see Kubernetes metadata): the first
//     lines of a pod the API does not know yet carry the path's metadata
//     only, and the tag of such a line renders {label:KEY} as "unknown".
//   - Labels edited on a running pod apply to the lines read after the
//     watch delivered the change, not to lines already read.
package cri
