/* Framing shared by every ZeroMQ link. A request is a multipart message
 * whose first frame is a short ASCII tag naming the link and its version;
 * the rest is that link's protobuf (proto/<link>.proto) and, for an
 * enqueue, the message body. */
#ifndef SHOAL_WIRE_H
#define SHOAL_WIRE_H

#define WIRE_TAG_ROUTER "R1" /* proto/router_node.proto RouterRequest */
#define WIRE_TAG_ADMIN "A1"  /* proto/cli_node.proto AdminRequest */
#define WIRE_TAG_NODE "N1"   /* proto/node_node.proto PeerMessage */
#define WIRE_TAG_MOVE "M1"   /* proto/node_node.proto MoveBatch / MoveAck */
#define WIRE_TAG_LEN 2

/* Bound on anything but a body frame: maps, envelopes, admin replies. */
#define WIRE_META_MAX (16u * 1024 * 1024)

/* Slack on top of router.max_message_size for a body frame: our Received
 * header and DKIM signatures. */
#define WIRE_BODY_SLACK (64u * 1024)

/* AdminReply.message when a node does not hold the qid asked for (status
 * STATUS_BAD_REQUEST); shoalctl tells "no such message" from other errors
 * by it. */
#define WIRE_MSG_UNKNOWN_QID "unknown qid"

#endif
