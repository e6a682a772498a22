"""A Sparkplug B edge node played by pysparkplug (a client library this
project did not write), driven by tests/sparkplug_end_to_end.rs.

Reads one JSON command per line on stdin, writes one JSON event per line on
stdout. Encoding, topics, the NDEATH will and the decoding of what the host
sends back (NCMD, STATE) are pysparkplug's; the script only chooses what to
send, so a test can make seq gaps, unknown aliases and deaths on purpose.

Commands:
  {"op": "connect", "host", "port", "user", "password", "group", "edge", "bd_seq"}
  {"op": "publish", "type": "NBIRTH|DBIRTH|NDATA|DDATA|DDEATH", "device": str|null,
   "seq": int, "qos": 0|1, "metrics": [{"name", "alias", "datatype", "value"}],
   "as_edge": str (optional: publish under another edge node's id)}
  {"op": "disconnect"}          clean: NDEATH published by us, then DISCONNECT
  {"op": "die"}                 the process exits without DISCONNECT (the broker
                                publishes the will)
Events: {"event": "connected"}, {"event": "published", "topic"},
  {"event": "ncmd", "metrics": {name: value}},
  {"event": "state", "host_id", "online", "timestamp"}, {"event": "error", "message"}
"""

import json
import os
import sys
import threading
import time

import pysparkplug as psp

_lock = threading.Lock()


def emit(**event):
    with _lock:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


def now_ms():
    return int(time.time() * 1000)


PAYLOADS = {
    "NBIRTH": psp.NBirth,
    "DBIRTH": psp.DBirth,
    "NDATA": psp.NData,
    "DDATA": psp.DData,
    "DDEATH": psp.DDeath,
}


def metric(m):
    return psp.Metric(
        timestamp=now_ms(),
        name=m.get("name"),
        datatype=psp.DataType[m["datatype"]],
        value=m.get("value"),
        alias=m.get("alias"),
    )


class Node:
    def __init__(self):
        self.client = None
        self.group = None
        self.edge = None
        self.bd_seq = 0

    def connect(self, c):
        self.group, self.edge, self.bd_seq = c["group"], c["edge"], c["bd_seq"]
        self.client = psp.Client(
            client_id="ww:" + c["user"], username=c["user"], password=c["password"]
        )
        bd = psp.Metric(
            timestamp=now_ms(), name="bdSeq", datatype=psp.DataType.INT64, value=self.bd_seq
        )
        will = psp.Message(
            topic=psp.Topic(
                message_type=psp.MessageType.NDEATH, group_id=self.group, edge_node_id=self.edge
            ),
            payload=psp.NDeath(timestamp=now_ms(), bd_seq_metric=bd),
            qos=psp.QoS.AT_MOST_ONCE,
            retain=False,
        )
        self.client.set_will(will)

        def on_ncmd(_client, message):
            metrics = {m.name: m.value for m in message.payload.metrics}
            emit(event="ncmd", topic=str(message.topic), metrics=metrics)

        def on_state(_client, message):
            emit(
                event="state",
                host_id=message.topic.sparkplug_host_id,
                online=message.payload.online,
                timestamp=message.payload.timestamp,
                retain=bool(message.retain),
            )

        self.client.subscribe(
            psp.Topic(message_type=psp.MessageType.NCMD, group_id=self.group, edge_node_id=self.edge),
            psp.QoS.AT_LEAST_ONCE,
            on_ncmd,
        )
        self.client.subscribe(
            psp.Topic(message_type=psp.MessageType.STATE, sparkplug_host_id=c.get("host_id", "+")),
            psp.QoS.AT_LEAST_ONCE,
            on_state,
        )
        connected = threading.Event()
        self.client.connect(c["host"], port=c["port"], blocking=False, callback=lambda _c: connected.set())
        if not connected.wait(10):
            raise RuntimeError("no CONNACK within 10 s")
        emit(event="connected")

    def publish(self, c):
        kind = c["type"]
        device = c.get("device")
        topic = psp.Topic(
            message_type=psp.MessageType[kind],
            group_id=self.group,
            edge_node_id=c.get("as_edge", self.edge),  # as_edge: try another node's topic
            device_id=device,
        )
        metrics = tuple(metric(m) for m in c.get("metrics", []))
        if kind == "NBIRTH":
            metrics = metrics + (
                psp.Metric(timestamp=now_ms(), name="bdSeq", datatype=psp.DataType.INT64, value=self.bd_seq),
            )
        cls = PAYLOADS[kind]
        payload = cls(timestamp=now_ms(), seq=c["seq"]) if kind == "DDEATH" else cls(
            timestamp=now_ms(), seq=c["seq"], metrics=metrics
        )
        qos = psp.QoS(c.get("qos", 0))
        self.client.publish(
            psp.Message(topic=topic, payload=payload, qos=qos, retain=False),
            include_dtypes=kind in ("NBIRTH", "DBIRTH"),
        )
        emit(event="published", topic=str(topic))

    def disconnect(self):
        bd = psp.Metric(timestamp=now_ms(), name="bdSeq", datatype=psp.DataType.INT64, value=self.bd_seq)
        self.client.publish(
            psp.Message(
                topic=psp.Topic(message_type=psp.MessageType.NDEATH, group_id=self.group, edge_node_id=self.edge),
                payload=psp.NDeath(timestamp=now_ms(), bd_seq_metric=bd),
                qos=psp.QoS.AT_MOST_ONCE,
                retain=False,
            )
        )
        time.sleep(0.2)
        self.client.disconnect()
        emit(event="disconnected")


def main():
    node = Node()
    emit(event="ready", pysparkplug=psp.__version__)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        c = json.loads(line)
        try:
            op = c["op"]
            if op == "connect":
                node.connect(c)
            elif op == "publish":
                node.publish(c)
            elif op == "disconnect":
                node.disconnect()
            elif op == "die":
                sys.stdout.flush()
                os._exit(0)
            else:
                emit(event="error", message=f"unknown op {op}")
        except Exception as e:  # reported to the test, which fails on it
            emit(event="error", message=f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
