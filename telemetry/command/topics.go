package command

// Topic names (prefix and robot as in package telemetry; both already
// validated there). The robot subscribes to CmdTopic at QoS 1 and
// publishes replies to ReplyTopic at QoS 1, not retained; the fleet
// subscribes to ReplyFilter.

// CmdTopic is "<prefix>/<robot>/cmd" (fleet -> robot, QoS 1, not retained).
func CmdTopic(prefix, robot string) string { return prefix + "/" + robot + "/cmd" }

// ReplyTopic is "<prefix>/<robot>/cmd/reply" (robot -> fleet, QoS 1, not
// retained).
func ReplyTopic(prefix, robot string) string { return CmdTopic(prefix, robot) + "/reply" }

// ReplyFilter is "<prefix>/+/cmd/reply": every robot's replies.
func ReplyFilter(prefix string) string { return prefix + "/+/cmd/reply" }
