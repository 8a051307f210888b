package docker

import "github.com/tinylib/msgp/msgp"

// Amazon ECS metadata without any API call: the ECS agent labels every
// container of a task (formats.md §3.1, §5.3), and those labels are in
// config.v2.json with the others. A container with any of them gets a
// record field
//
//	"ecs" map  "cluster"        com.amazonaws.ecs.cluster
//	           "task_arn"       com.amazonaws.ecs.task-arn
//	           "task_family"    com.amazonaws.ecs.task-definition-family
//	           "task_revision"  com.amazonaws.ecs.task-definition-version
//	           "container_name" com.amazonaws.ecs.container-name (the name
//	                            in the task definition, not Docker's
//	                            /ecs-<family>-<rev>-<name>-<hash>)
//
// with the labels present (a missing one is left out), whether or not
// IncludeLabels is set. Tags and routes use the labels themselves:
// {label:com.amazonaws.ecs.task-definition-family}. A payload field named
// "ecs" is not merged (see reservedKeys). Records that FireLens sends
// through the forward input keep their own ecs_* fields; this is the
// docker input's only.

// ecsLabels maps the ECS agent's Docker labels to the "ecs" map's keys,
// in record order.
var ecsLabels = [...][2]string{
	{"com.amazonaws.ecs.cluster", "cluster"},
	{"com.amazonaws.ecs.task-arn", "task_arn"},
	{"com.amazonaws.ecs.task-definition-family", "task_family"},
	{"com.amazonaws.ecs.task-definition-version", "task_revision"},
	{"com.amazonaws.ecs.container-name", "container_name"},
}

// appendECS appends the "ecs" key and map to b if the container (labels:
// its sorted key, value list) has ECS labels, and reports how many record
// pairs it added (0 or 1).
func (c *container) appendECS(b []byte) ([]byte, int) {
	var vals [len(ecsLabels)]string
	var found [len(ecsLabels)]bool
	n := 0
	for i, l := range ecsLabels {
		for j := 0; j+1 < len(c.labels); j += 2 {
			if c.labels[j] == l[0] {
				vals[i], found[i] = c.labels[j+1], true
				n++
				break
			}
		}
	}
	if n == 0 {
		return b, 0
	}
	b = msgp.AppendString(b, "ecs")
	b = msgp.AppendMapHeader(b, uint32(n))
	for i, l := range ecsLabels {
		if found[i] {
			b = msgp.AppendString(b, l[1])
			b = msgp.AppendString(b, vals[i])
		}
	}
	return b, 1
}
