"""The mixed workload of the fault tests and its checks (docs/cluster.md, "Fault tests").

Workload: one thread per example module, each with its own connections (lab.Router),
appending to the module's leader with acks alternating `appended` and `processed`:
  wordcount  sentences of words drawn from a 300-word vocabulary;
  bank       transfers between ACCOUNTS fixed accounts (each got DEPOSIT at the start), of
             1 to 400, many of them refused for lack of money;
  social     follows among 16 users, and posts with ids increasing per author.
Every acknowledged append is recorded with its partition and offset. A failed append is
not resent (its outcome is unknown: it may be in the depot or not); the thread finds the
leader again and appends its next record. Records are never repeated (unique transfer ids,
increasing post ids), so a record in a depot twice would be a bug.

Checks (check()), once every topology and every replica has caught up:
  - the replicas of each module (all of them) catch up with the leader's log within 60 s,
    and report the same digest at the same applied end; when they do not, the checks below
    run all the same (on the leader) and the failure reports everything;
  - every acknowledged append is in its depot at the partition and offset of its ack, with
    the same value (ReadDepot on the leader);
  - bank: the balances add up to the deposits of *deposits, none is negative, and the
    query total-money() says the same;
  - wordcount: $$word_counts has exactly the words of the sentences of *sentences, no count
    below its recomputation from them (stream topologies are at-least-once: a sentence
    replayed after a crash is counted again), and the excess is reported;
  - social: $$followers equals its recomputation from *follows, $$posts from *posts.
"""

import json
import random
import threading

import lab as lab_mod
import netns
import strata
from strata import Ack

MODULES = ("wordcount", "bank", "social")
DEPOTS = {"wordcount": ("*sentences",), "bank": ("*deposits", "*transfers"),
          "social": ("*follows", "*posts")}
ACCOUNTS = 8
DEPOSIT = 1000
USERS = 16


def split_words(text):
    """examples/common/split_words.h: lower-cased runs of ASCII letters and digits."""
    words, current = [], []
    for c in text:
        if c.isascii() and c.isalnum():
            current.append(c.lower())
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


class Acked:
    __slots__ = ("module", "depot", "partition", "offset", "record", "node")

    def __init__(self, module, depot, partition, offset, record, node):
        self.module, self.depot, self.partition = module, depot, partition
        self.offset, self.record, self.node = offset, record, node


class Workload:
    def __init__(self, lab, seed, partitions=4, replication=3):
        self.lab = lab
        self.seed = seed
        self.partitions = partitions
        self.replication = replication
        self.acked = []
        self.failed = 0  # appends that failed (outcome unknown or refused)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._round = 0
        self._next_transfer = 0
        self._next_post = {}

    # ---- setup ----

    def deploy(self, origin):
        """Deploys the three modules at node `origin` with the workload's replication (none
        without --cluster), then deposits DEPOSIT to every account."""
        router = lab_mod.Router(self.lab, timeout=30)
        client = router.client(origin)
        for m in MODULES:
            lab_mod.deploy(client, self.lab.module_path(m), self.partitions,
                           self.replication if self.lab.clustered else None)
        for a in range(ACCOUNTS):
            record = {"account": "a%d" % a, "amount": DEPOSIT}
            r = router.call("bank", lambda c: c.append("bank", "*deposits", record,
                                                       ack=Ack.PROCESSED))
            self._record("bank", "*deposits", r, record, None)
        router.close()

    # ---- running ----

    def start(self):
        self._stop.clear()
        self._round += 1
        for m in MODULES:
            t = threading.Thread(target=self._run, args=(m, self._round), name="load-" + m)
            t.start()
            self._threads.append(t)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join()
        self._threads = []

    def count(self, module=None, node=None):
        with self._lock:
            return sum(1 for a in self.acked if (module is None or a.module == module) and
                       (node is None or a.node == node))

    def wait_progress(self, appends, timeout=60, what="appends"):
        """Waits until every module has `appends` more acknowledged appends than now."""
        start = {m: self.count(m) for m in MODULES}
        netns.wait_for(lambda: all(self.count(m) >= start[m] + appends for m in MODULES),
                       timeout, "%d more acknowledged %s of every module" % (appends, what))

    def _record(self, module, depot, result, record, node):
        with self._lock:
            self.acked.append(Acked(module, depot, result.partition, result.offset, record,
                                    node.id if node else None))

    def _run(self, module, round_):
        rng = random.Random("%s-%s-%d" % (self.seed, module, round_))
        router = lab_mod.Router(self.lab, timeout=2.0)
        vocabulary = ["w%d" % i for i in range(300)]
        n = 0
        try:
            while not self._stop.is_set():
                n += 1
                ack = Ack.APPENDED if n % 2 else Ack.PROCESSED
                depot, record = self._next_record(module, rng, vocabulary)
                try:
                    result, node = router.once(module, lambda c: c.append(module, depot, record,
                                                                          ack=ack))
                except strata.TopologyFailed as e:  # in the depot all the same
                    result, node = e.result, router.leader(module)
                except strata.StrataError:
                    with self._lock:
                        self.failed += 1
                    self._stop.wait(0.05)
                    continue
                except TimeoutError:  # no leader found yet; the next attempt looks again
                    continue
                self._record(module, depot, result, record, node)
        finally:
            router.close()

    def _next_record(self, module, rng, vocabulary):
        with self._lock:
            if module == "wordcount":
                return "*sentences", " ".join(rng.choice(vocabulary)
                                              for _ in range(rng.randint(1, 8)))
            if module == "bank":
                self._next_transfer += 1
                a, b = rng.sample(range(ACCOUNTS), 2)
                return "*transfers", {"id": "t%d" % self._next_transfer, "from": "a%d" % a,
                                      "to": "a%d" % b, "amount": rng.randint(1, 400)}
            if rng.random() < 0.3:
                a, b = rng.sample(range(USERS), 2)
                return "*follows", {"from": "u%d" % a, "to": "u%d" % b}
            author = "u%d" % rng.randrange(USERS)
            self._next_post[author] = self._next_post.get(author, 0) + 1
            return "*posts", {"author": author, "id": self._next_post[author],
                              "text": "post %d of %s" % (self._next_post[author], author)}


# ---- the checks ----

def wait_caught_up(lab, router, problems, replicas=True, expected=3, timeout=120,
                   replicas_timeout=60):
    """Waits until, for every module, the leader's topologies have no lag and (with
    `replicas`, in a cluster) `expected` nodes answer GET /rest/<module>/replica, one of them
    the leader, each with the leader's log end applied; answers {module: {node id: its
    answer}} for the modules whose replicas converged. A module whose replicas do not
    converge within `replicas_timeout` seconds adds a problem with their last answers, and
    the other checks go on."""
    states = {}
    for m in MODULES:
        def idle():
            stats = router.call(m, lambda c: c.stats(m))
            return all(t.lag == 0 for s in stats.modules for t in s.topologies)
        netns.wait_for(idle, timeout, "the topologies of %s to catch up" % m)
        if not lab.clustered or not replicas:
            continue
        last = {}

        def equal():
            last.clear()
            last.update(lab.replicas(m))
            leading = [r for r in last.values() if lab_mod.leading(r)]
            if len(leading) != 1 or len(last) < expected:
                return None
            end = leading[0].get("log_end")
            if all(r.get("applied_end") == end and r.get("log_end") == end
                   for r in last.values()):
                return dict(last)
            return None
        try:
            states[m] = netns.wait_for(equal, replicas_timeout, "replicas of %s" % m)
        except TimeoutError:
            problems.append(
                "%s: the replicas did not converge within %g s (%d expected, one leading, "
                "each with applied_end = log_end = the leader's log_end); they answered: %s"
                % (m, replicas_timeout, expected, json.dumps(last, sort_keys=True)))
    return states


def read_depots(router, partitions):
    """{(module, depot): [[values of partition 0 by offset], ...]} read from the leaders."""
    out = {}
    for m in MODULES:
        for d in DEPOTS[m]:
            parts = []
            for p in range(partitions):
                values, offset = [], 0
                while True:
                    page = router.call(m, lambda c: c.read_depot(m, d, p, offset, None, 1000))
                    for rec in page:
                        if rec.offset != len(values):
                            raise AssertionError("%s %s partition %d: offset %d where %d was "
                                                 "expected" % (m, d, p, rec.offset, len(values)))
                        values.append(rec.value)
                    if len(page) < 1000:
                        break
                    offset = len(values)
                parts.append(values)
            out[(m, d)] = parts
    return out


def read_pstate(router, module, pstate):
    """The whole PState (select_page over all partitions) as a dict."""
    out, token = {}, None
    while True:
        page = router.call(module, lambda c: c.select_page(module, pstate, (), token, 1000))
        for entry in page.values:
            out.update(entry)
        token = page.next_token
        if token is None:
            return out


def check(lab, workload, replicas_served, say=print):
    """Runs the checks after a round; answers the list of what differs (empty: all hold)."""
    problems = []
    router = lab_mod.Router(lab, timeout=10)
    try:
        states = wait_caught_up(lab, router, problems, replicas=replicas_served,
                                expected=workload.replication)
        if lab.clustered and replicas_served:
            for m, replicas in states.items():
                digests = {node_id: (r.get("applied_end"), r.get("digest"))
                           for node_id, r in replicas.items()}
                if len(set(digests.values())) != 1:
                    problems.append("%s: the replicas differ (node: (applied_end, digest)): %s"
                                    % (m, digests))
                if len(replicas) != workload.replication:
                    problems.append("%s: %d replicas answer /rest/<module>/replica, not %d: %s"
                                    % (m, len(replicas), workload.replication,
                                       sorted(replicas)))
        depots = read_depots(router, workload.partitions)
        missing = []
        with workload._lock:
            acked = list(workload.acked)
        for a in acked:
            part = depots[(a.module, a.depot)][a.partition]
            if a.offset >= len(part) or part[a.offset] != a.record:
                missing.append("%s %s partition %d offset %d: acknowledged %r, depot has %s"
                               % (a.module, a.depot, a.partition, a.offset, a.record,
                                  repr(part[a.offset]) if a.offset < len(part) else
                                  "nothing (%d records)" % len(part)))
        if missing:
            problems.append("%d acknowledged appends missing or different, e.g.:\n  %s"
                            % (len(missing), "\n  ".join(missing[:10])))
        problems += _check_bank(router, depots)
        recounted, wc = _check_wordcount(router, depots)
        problems += wc
        problems += _check_social(router, depots)
        records = sum(len(p) for parts in depots.values() for p in parts)
        say("check: %d acknowledged appends, %d depot records, %d failed appends; wordcount "
            "replays recounted %d occurrences%s" % (len(acked), records, workload.failed,
                                                    recounted,
                                                    "; digests equal" if states else ""))
    finally:
        router.close()
    return problems


def _check_bank(router, depots):
    problems = []
    deposited = sum(r["amount"] for p in depots[("bank", "*deposits")] for r in p)
    balances = read_pstate(router, "bank", "$$balances")
    negative = {a: b for a, b in balances.items() if b < 0}
    if negative:
        problems.append("bank: negative balances %s" % negative)
    if sum(balances.values()) != deposited:
        problems.append("bank: the balances add up to %d, the deposits to %d: %s"
                        % (sum(balances.values()), deposited, balances))
    total = router.call("bank", lambda c: c.invoke("bank", "total-money"))
    if total != deposited:
        problems.append("bank: total-money() is %s, the deposits %d" % (total, deposited))
    return problems


def _check_wordcount(router, depots):
    expected = {}
    for p in depots[("wordcount", "*sentences")]:
        for sentence in p:
            for w in split_words(sentence):
                expected[w] = expected.get(w, 0) + 1
    counts = read_pstate(router, "wordcount", "$$word_counts")
    problems = []
    missing = sorted(set(expected) - set(counts))
    extra = sorted(set(counts) - set(expected))
    below = {w: (counts[w], n) for w, n in expected.items() if w in counts and counts[w] < n}
    if missing:
        problems.append("wordcount: words of *sentences missing from $$word_counts: %s"
                        % missing[:20])
    if extra:
        problems.append("wordcount: words in $$word_counts that no sentence has: %s" % extra[:20])
    if below:
        problems.append("wordcount: counts below their recomputation (count, recomputed): %s"
                        % dict(list(below.items())[:20]))
    recounted = sum(counts[w] - n for w, n in expected.items() if w in counts and counts[w] > n)
    return recounted, problems


def _check_social(router, depots):
    problems = []
    followers = {}
    for p in depots[("social", "*follows")]:
        for r in p:
            if r.get("op") == "unfollow":
                followers.get(r["to"], set()).discard(r["from"])
            else:
                followers.setdefault(r["to"], set()).add(r["from"])
    live = {k: set(v) for k, v in read_pstate(router, "social", "$$followers").items()}
    live = {k: v for k, v in live.items() if v}
    followers = {k: v for k, v in followers.items() if v}
    if live != followers:
        diff = {k: (sorted(live.get(k, ())), sorted(followers.get(k, ())))
                for k in set(live) | set(followers) if live.get(k) != followers.get(k)}
        problems.append("social: $$followers differs from *follows (user: (live, recomputed)): %s"
                        % diff)
    posts = {}
    for p in depots[("social", "*posts")]:
        for r in p:
            posts.setdefault(r["author"], {})[r["id"]] = {"text": r["text"]}
    live_posts = read_pstate(router, "social", "$$posts")
    if live_posts != posts:
        diff = sorted(a for a in set(live_posts) | set(posts) if live_posts.get(a) != posts.get(a))
        problems.append("social: $$posts differs from *posts for authors %s" % diff)
    return problems
