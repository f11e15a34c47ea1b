"""Fingerprinting: the masking table, order-independent keys, snapshots, and speed-independent caching."""

from __future__ import annotations

import json
import random
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from sentinel.core.fingerprint import VAR, Fingerprinter, mask, template_key
from sentinel.core.model import Fingerprint

# Hypothesis keeps a cache under ./.hypothesis by default; pyproject's norecursedirs does not skip it
# and filterwarnings=error turns hypothesis' warning about that into a collection error on the next
# run.  Keep hypothesis' files out of the working tree.
set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "kube-sentinel-hypothesis"))

MASK_CASES = [
    pytest.param("OOMKilled", "OOMKilled", id="constant"),
    pytest.param("retry 3 of 10", "retry <*> of <*>", id="integers"),
    pytest.param("offset -42 applied", "offset <*> applied", id="negative-number"),
    pytest.param("Receiving blk_-1608999687919862906 ok", "Receiving <*> ok", id="signed-block-id"),
    pytest.param("took 1.25s", "took <*>", id="duration"),
    pytest.param("context deadline exceeded after 1m30.5s", "context deadline exceeded after <*>", id="go-dur"),
    pytest.param(
        "failed to connect to 10.0.0.5:5432: connection refused",
        "failed to connect to <*>: connection refused",
        id="ip-port",
    ),
    pytest.param("dial tcp [fe80::1]:443: i/o timeout", "dial tcp [<*>]:<*>: i/o timeout", id="ipv6"),
    pytest.param("BSSID changed to 5c:50:15:36:bc:03", "BSSID changed to <*>", id="mac"),
    pytest.param("instance 96abccce-8d1f-4e07-b6d1-4b2ab87e23b4 deleted", "instance <*> deleted", id="uuid"),
    pytest.param("handle @0x47e9e0 closed", "handle <*> closed", id="hex"),
    pytest.param("at 2024-03-01T12:00:00.123Z done", "at <*> done", id="iso-timestamp"),
    pytest.param("connection at Fri Jun 17 07:07:00 2005", "connection at <*>", id="syslog-date"),
    pytest.param("GET /api/v1/users failed", "GET <*> failed", id="path"),
    pytest.param("read C:\\Windows\\system32\\x.dll", "read <*>", id="windows-path"),
    pytest.param("I/O error on read/write", "I/O error on read/write", id="slash-words-kept"),
    pytest.param("fetch https://example.com/a?b=c failed", "fetch <*> failed", id="url"),
    pytest.param("mail to bob@example.com bounced", "mail to <*> bounced", id="email"),
    pytest.param('lock tag="View Lock" held', 'lock tag="<*>" held', id="quoted-kv-value"),
    pytest.param("user=alice attempt=3", "user=alice attempt=<*>", id="kv-digit-value"),
    pytest.param("size 5.2 KB, free 317.1 MB", "size <*>, free <*>", id="size-unit"),
    pytest.param("overlap:false ret:true ws=null", "overlap:<*> ret:<*> ws=<*>", id="bool-null"),
    pytest.param("connection from 1.2.3.4 () at x", "connection from <*> (<*>) at x", id="empty-parens"),
    pytest.param("IRQs 3 4 5 6 7 10 11 12 busy", "IRQs <*> busy", id="run-collapses"),
    pytest.param(
        "Back-off restarting failed container api in pod api-7d4b9c-xk2lp_prod(uid)",
        "Back-off restarting failed container api in pod <*>(uid)",
        id="pod-with-digits",
    ),
    pytest.param("pod web-bcdfg-xkzlp crashed", "pod <*> crashed", id="pod-without-digits"),
    pytest.param(
        "E0612 10:11:12.123456   1 reflector.go:138] Failed to watch *v1.Pod",
        "<*> reflector.go:<*>] Failed to watch <*>",
        id="klog-header",
    ),
    pytest.param("a   b\tc", "a b c", id="whitespace"),
    pytest.param("", "", id="empty"),
]


@pytest.mark.parametrize(("message", "expected"), MASK_CASES)
def test_mask(message: str, expected: str) -> None:
    assert mask(message) == expected


def test_mask_kv_values_option() -> None:
    assert mask("user=alice attempt=3", kv_values=True) == "user=<*> attempt=<*>"


def test_fingerprint_shape() -> None:
    fp = Fingerprinter().fingerprint("retry 3 of 10")
    assert fp == Fingerprint(template="retry <*> of <*>", key=template_key("retry <*> of <*>"))
    assert re.fullmatch(r"[0-9a-f]{16}", fp.key)


LINES = [
    "session opened for user root by (uid=0)",
    "session opened for user news by (uid=13)",
    "session opened for user cyrus by (uid=0)",
    "session opened for user test by (uid=509)",
    "Block broadcast_1 stored as bytes in memory (estimated size 5.2 KB, free 317.1 KB)",
    "Block broadcast_2 stored as values in memory (estimated size 93.0 B, free 317.5 KB)",
    "[instance: 96abccce-8d1f-4e07-b6d1-4b2ab87e23b4] VM Started (Lifecycle Event)",
    "[instance: 96abccce-8d1f-4e07-b6d1-4b2ab87e23b4] VM Stopped (Lifecycle Event)",
    "[instance: 11abccce-8d1f-4e07-b6d1-4b2ab87e23b4] VM Paused (Lifecycle Event)",
    '10.11.10.1 "GET /v2/servers/detail HTTP/1.1" status: 200 len: 1893 time: 0.25',
    '10.11.10.1 "POST /v2/servers HTTP/1.1" status: 202 len: 733 time: 0.49',
    '10.11.10.1 "DELETE /v2/servers/1 HTTP/1.1" status: 204 len: 0 time: 0.12',
    "synchronized to 10.100.20.250, stratum 3",
    "synchronized to LOCAL(0), stratum 10",
    "not allocating divert_blk for non-ethernet device lo",
    "not allocating divert_blk for non-ethernet device sit0",
    "failed to connect to 10.0.0.5:5432: connection refused",
    "failed to connect to 10.0.0.7:6379: connection refused",
    "Back-off restarting failed container api in pod api-7d4b9c-xk2lp_prod(uid)",
    "OOMKilled",
    "context deadline exceeded after 30s",
    "removing chargen",
    "removing daytime",
    "removing echo",
    "removing eklogin",
]


def _partition(keys: list[str]) -> set[frozenset[int]]:
    groups: dict[str, set[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, set()).add(i)
    return {frozenset(g) for g in groups.values()}


def _final_keys(fp: Fingerprinter, lines: list[str]) -> list[str]:
    online = [fp.fingerprint(line).key for line in lines]
    return [fp.resolve(k) for k in online]


def test_groups_merge_where_words_vary() -> None:
    fp = Fingerprinter()
    keys = _final_keys(fp, LINES)
    t = {line: fp.fingerprint(line).template for line in LINES}
    assert t[LINES[0]] == "session opened for user <*> by (uid=<*>)"
    assert len({keys[i] for i in range(4)}) == 1
    assert keys[4] != keys[5]  # two words are an alternative, not a variable
    assert len({keys[6], keys[7], keys[8]}) == 3  # verbs name the event
    assert len({keys[9], keys[10], keys[11]}) == 3  # HTTP methods name the event
    assert keys[12] == keys[13]  # LOCAL(<*>) next to <*>
    assert keys[14] == keys[15]
    assert keys[16] == keys[17]
    assert t["removing echo"] == "removing <*>"


@pytest.mark.parametrize("seed", range(5))
def test_permutation_gives_same_partition_and_keys(seed: int) -> None:
    reference = dict(zip(LINES, _final_keys(Fingerprinter(), LINES), strict=True))
    shuffled = list(LINES)
    random.Random(seed).shuffle(shuffled)
    fp = Fingerprinter()
    keys = dict(zip(shuffled, _final_keys(fp, shuffled), strict=True))
    assert keys == reference
    # asking again at the end gives the resolved keys directly
    assert {line: fp.fingerprint(line).key for line in LINES} == reference
    assert _partition([keys[line] for line in LINES]) == _partition([reference[line] for line in LINES])


def test_online_keys_resolve_through_aliases() -> None:
    fp = Fingerprinter()
    first = fp.fingerprint("removing chargen").key
    assert fp.template_of(first) == "removing chargen"
    fp.fingerprint("removing daytime")
    fp.fingerprint("removing echo")
    now = fp.fingerprint("removing chargen").key
    assert now != first
    assert fp.aliases()[first] == now
    assert fp.resolve(first) == now
    assert fp.template_of(first) == "removing <*>"
    assert set(fp.aliases().values()) <= set(fp.templates())


def test_restore_from_snapshot_gives_same_keys() -> None:
    fp = Fingerprinter()
    keys = _final_keys(fp, LINES)
    data = json.loads(json.dumps(fp.snapshot()))
    restored = Fingerprinter.restore(data)
    assert [restored.fingerprint(line).key for line in LINES] == keys
    assert restored.aliases() == fp.aliases()
    assert restored.templates() == fp.templates()


def test_restore_rejects_unknown_version() -> None:
    with pytest.raises(ValueError, match="snapshot version"):
        Fingerprinter.restore({"version": 99})


def test_fresh_fingerprinters_agree() -> None:
    assert Fingerprinter().fingerprint(LINES[0]) == Fingerprinter().fingerprint(LINES[0])


def test_cache_size_does_not_change_results() -> None:
    small = Fingerprinter(cache_size=2)
    big = Fingerprinter()
    assert _final_keys(small, LINES * 2) == _final_keys(big, LINES * 2)


def test_min_variants_validated() -> None:
    with pytest.raises(ValueError, match="min_variants"):
        Fingerprinter(min_variants=1)


def test_unknown_key_has_no_template() -> None:
    assert Fingerprinter().template_of("0" * 16) is None


TEMPLATES = [
    "retry {} of {} after {}ms",
    "failed to connect to 10.0.{}.{}:{}: connection refused",
    "Receiving block blk_{} src: /10.250.{}.{}:{}",
    "Jun {} {}:{}:{} combo sshd[{}]: session opened",
    "pod api-{}-xk2lp restarted {} times, limit {}",
    "Finished task {}.0 in stage {}.0 (TID {}). {} bytes result sent to driver",
    "memory limit: {}.00 MB, free: {}.00 MB, {}",
]

_numbers = st.lists(st.integers(min_value=-(10**12), max_value=10**12), min_size=5, max_size=5)


@settings(max_examples=200, deadline=None, database=None)
@given(template=st.sampled_from(TEMPLATES), a=_numbers, b=_numbers)
def test_key_ignores_numbers(template: str, a: list[int], b: list[int]) -> None:
    n = template.count("{}")
    line_a, line_b = template.format(*a[:n]), template.format(*b[:n])
    fp = Fingerprinter()
    key_a = fp.fingerprint(line_a).key
    assert fp.fingerprint(line_b).key == key_a
    assert Fingerprinter().fingerprint(line_b).key == key_a
    assert VAR in fp.fingerprint(line_a).template


def test_peek_answers_like_fingerprint_but_learns_nothing() -> None:
    fp = Fingerprinter()
    for word in ("alpha", "beta"):
        fp.fingerprint(f"cache shard {word} is unavailable")
    before = fp.snapshot()
    seen = fp.peek("cache shard alpha is unavailable")
    assert seen == fp.fingerprint("cache shard alpha is unavailable")
    unseen = fp.peek("cache shard gamma is unavailable")  # would merge the three if learned
    assert unseen.template == "cache shard gamma is unavailable"
    assert fp.snapshot() == before and fp.aliases() == {}


@pytest.mark.parametrize(
    ("template", "message", "expected"),
    [
        pytest.param(
            "failed to connect to <*> after <*> retries",
            "failed to connect to 10.0.0.5:5432 after 3 retries",
            ["10.0.0.5:5432", "3"],
            id="two",
        ),
        pytest.param("all quiet", "all quiet", [], id="no-variables"),
        pytest.param("a <*> b", "x y", None, id="does-not-fit"),
        pytest.param("<*> (<*>)", "(" * 5000 + " (x)", ["(" * 5000, "x"], id="linear-on-hostile-text"),
    ],
)
def test_variables_are_the_parts_behind_the_stars(template: str, message: str, expected: list[str] | None) -> None:
    from sentinel.core.fingerprint import variables

    assert variables(template, message) == expected


# One logging statement, values that look like words: each pair must share a template.
SAME_STATEMENT = [
    pytest.param(
        "connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.1, server: shop, "
        'request: "GET /api HTTP/1.1", upstream: "http://10.0.0.7:8080/api", host: "shop.example.com"',
        "connect() failed (111: Connection refused) while connecting to upstream, client: 10.2.0.9, server: admin, "
        'request: "POST /login HTTP/2.0", upstream: "http://10.0.0.8:8080/login", host: "admin", referrer: "https://x/"',
        id="nginx-tail-with-and-without-referrer",
    ),
    pytest.param(
        '"GET /api/cart HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure} - "-" 0 91 3 - '
        '"-" "curl/8.5.0" "5f1c" "cart.shop.svc.cluster.local:8080" "10.0.0.7:8080"',
        '"DELETE /api/orders/7 HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure} - "-" 0 '
        '91 3 - "-" "Mozilla/5.0 (X11; Linux x86_64)" "9a2b" "orders.billing.svc.cluster.local:8080" "10.0.0.9:8080"',
        id="envoy-method-path-agent-authority",
    ),
    pytest.param(
        "FailedScheduling: 0/9 nodes are available: 3 node(s) had untolerated taint {node-role.kubernetes.io/"
        "control-plane: }, 6 Insufficient cpu. preemption: 0/9 nodes are available: 3 Preemption is not helpful.",
        "FailedScheduling: 0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: "
        "3 No preemption victims found for incoming pod.",
        id="scheduler-reason-lists",
    ),
    pytest.param(
        "plugin/errors: 2 api.shop.svc.cluster.local. A: read udp 10.0.0.3:5353->10.0.0.2:53: i/o timeout",
        "plugin/errors: 2 login.microsoftonline.com. AAAA: read udp 10.0.0.3:5353->10.0.0.2:53: i/o timeout",
        id="coredns-name-and-type",
    ),
    pytest.param(
        "1 --- [nio-8080-exec-3] c.e.shop.OrderService : Order failed",
        "1 --- [ad | producer-1] c.e.shop.OrderService : Order failed",
        id="spring-thread-names",
    ),
    pytest.param(
        'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space',
        'Exception in thread "kafka-producer-network-thread | producer-1" java.lang.OutOfMemoryError: Java heap space',
        id="jvm-thread-names",
    ),
    pytest.param(
        'E1 "Failed to update lease" err="Put \\"https://10.0.0.1:6443/apis/x?timeout=5s\\": dial tcp: refused"',
        'E1 "Failed to update lease" err="Put \\"https://10.0.0.2:6443/apis/y\\": dial tcp: refused"',
        id="klog-quoted-value-with-escaped-quotes",
    ),
    # Go's %q names: resources, namespaces, users (plain and JSON-escaped)
    pytest.param(
        'pods is forbidden: User \\"system:serviceaccount:monitoring:prometheus\\" cannot list resource \\"pods\\" '
        'in the namespace \\"shop\\"',
        'pods is forbidden: User \\"system:serviceaccount:monitoring:prometheus\\" cannot list resource \\"pods\\" '
        'in the namespace \\"billing\\"',
        id="go-quoted-names-escaped",
    ),
    pytest.param(
        'secret "web-tls" not found',
        'secret "api-tls" not found',
        id="go-quoted-names",
    ),
    # Spring Boot 3's "--- [app] [thread]": the thread is a variable, "main" as well as "exec-1"
    pytest.param(
        "1 --- [checkout] [           main] c.e.shop.OrderService : Order failed",
        "1 --- [checkout] [nio-8080-exec-3] c.e.shop.OrderService : Order failed",
        id="spring-boot-3-thread-names",
    ),
    # logback's and log4j2's default layout "%d [%thread] %-5level %logger - %msg"
    pytest.param(
        "10:00:00.123 [main] WARN  o.a.k.c.c.internals.ConsumerCoordinator - Offset commit failed",
        "10:00:00.123 [kafka-coordinator-heartbeat-thread | notifier] WARN  o.a.k.c.c.internals."
        "ConsumerCoordinator - Offset commit failed",
        id="logback-default-thread-names",
    ),
    # ReplicaSet names: the pod-template-hash alone, vowel-less, with or without digits
    pytest.param(
        'sync "shop/web-bcdfghjklm" failed with Operation cannot be fulfilled on replicasets.apps "web-bcdfghjklm"',
        'sync "shop/cart-7d4b9c8f6d" failed with Operation cannot be fulfilled on replicasets.apps "cart-7d4b9c8f6d"',
        id="replicaset-names",
    ),
    pytest.param(
        "getaddrinfo ENOTFOUND smtp.sendgrid.net",
        "getaddrinfo ENOTFOUND hooks.slack.com",
        id="hostnames",
    ),
]


@pytest.mark.parametrize(("a", "b"), SAME_STATEMENT)
def test_variables_that_look_like_words(a: str, b: str) -> None:
    assert mask(a) == mask(b)


def test_klog_error_text_stays_in_the_template() -> None:
    # klog ErrorS puts what went wrong in err="...": one wrapper message ("re-queuing item due to
    # error processing") with two causes is two statements, as a JSON or logfmt error is
    head = 'E1 controller.go:162] "re-queuing item due to error processing" '
    a = mask(head + 'err="error presenting challenge: AccessDenied" key="shop/web-tls"')
    b = mask(head + 'err="failed to perform self check GET request: connection refused" key="shop/web-tls"')
    assert a != b
    assert 'err="error presenting challenge: AccessDenied" key="<*>"' in a
    # a quoted phrase (the klog message) is kept; a quoted single word is a name
    assert mask('"re-queuing item" "web-tls"') == '"re-queuing item" "<*>"'


def test_structure_keeps_what_names_the_event() -> None:
    # Loghub OpenStack's wsgi lines keep their method apart: no status follows the request there
    assert mask('1.2.3.4 "GET /v2/x HTTP/1.1" status: 200') != mask('1.2.3.4 "POST /v2/x HTTP/1.1" status: 200')
    # Envoy response flags name the failure
    assert mask('"GET / HTTP/1.1" 503 UF x') != mask('"GET / HTTP/1.1" 504 UT x')
    # Java class names are not host names, java.net.* included (a root cause names the failure)
    assert "java.lang.OutOfMemoryError" in mask("java.lang.OutOfMemoryError: Java heap space")
    assert mask("Caused by: java.net.SocketTimeoutException: Read timed out") != mask(
        "Caused by: java.net.ConnectException: Read timed out"
    )
