#!/bin/bash
# Latency of a lone event through the Kafka output, with or without the
# disk queue: five SIP OPTIONS, 1.5 s apart, from a netns over a veth into
# a host-mode sensor; how long after each packet a consumer has its event.
#
#   sudo benchmarks/queue-latency.sh queue|noqueue
#
# Needs root, `cargo build --release`, tansu (`cargo xtask setup`) and
# kafka-python (`pip install kafka-python`). The consumer polls every 5 ms
# and librdkafka lingers 5 ms, both included.
set -e
A=latA$$ B=latB$$ NS=latns$$
BIN=$(cd "$(dirname "$0")/.." && pwd)/target/release/sipbeat
D=$(mktemp -d /tmp/sipbeat-latency.XXXX); cd $D
cleanup() { kill $SP $TP 2>/dev/null || true; ip netns del $NS 2>/dev/null || true; ip link del $B 2>/dev/null || true; }
trap 'cleanup; rm -rf "$D"' EXIT
ip netns add $NS; ip link add $A type veth peer name $B; ip link set $A netns $NS
ip netns exec $NS ip addr add 10.99.0.1/24 dev $A; ip netns exec $NS ip link set $A up
ip addr add 10.99.0.2/24 dev $B; ip link set $B up
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
~/.cargo/bin/tansu broker --listener-url tcp://127.0.0.1:$PORT --advertised-listener-url tcp://127.0.0.1:$PORT --storage-engine memory://tansu/ >/dev/null 2>&1 &
TP=$!
for i in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
~/.cargo/bin/tansu topic create lat --broker tcp://127.0.0.1:$PORT --partitions 1 >/dev/null
Q=""; [ "$1" = queue ] && Q=$'queue:\n  disk:\n    path: '$D$'/q\n'
printf 'output:\n  kafka:\n    brokers: ["127.0.0.1:%s"]\n    topic: lat\n    compression: none\n%s' $PORT "$Q" > cfg.yml
$BIN run -i $B --mode host -c cfg.yml 2> sensor.log &
SP=$!
sleep 3
python3 - $PORT $NS <<'PY'
import subprocess, sys, time
from kafka import KafkaConsumer
c = KafkaConsumer('lat', bootstrap_servers=f'127.0.0.1:{sys.argv[1]}', auto_offset_reset='earliest', fetch_max_wait_ms=5, consumer_timeout_ms=100)
c.poll(500)
for n in range(5):
    msg = (f"OPTIONS sip:b@10.99.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.99.0.1:5060;branch=z9hG4bK{n}x\r\n"
           f"From: <sip:a@10.99.0.1>;tag={n}\r\nTo: <sip:b@10.99.0.2>\r\nCall-ID: lat{n}@x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
    t0 = time.time()
    subprocess.run(["ip","netns","exec",sys.argv[2],"python3","-c",
        f"import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('10.99.0.1',5060));s.sendto({msg!r},('10.99.0.2',5060))"], check=True)
    t_sent = time.time()
    got = None
    while time.time() - t0 < 10 and got is None:
        for tp, recs in c.poll(timeout_ms=5).items():
            for r in recs:
                if f"lat{n}@x".encode() in r.value: got = time.time()
    print(f"event {n}: {((got or float('nan')) - t_sent)*1000:.0f} ms after the packet")
    time.sleep(1.5)
PY
