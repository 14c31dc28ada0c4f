"""The replication engine's theory of operation: what a replica does with each input, and why.

This module is documentation only and defines nothing. :class:`sync.replica.Replica` (the
façade, named ``Replica`` below) keeps a short docstring saying its one job and points here;
each component of ``sync/replica/`` says in its own docstring the part it owns in detail.

Dynamo-style leaderless replication over delta-state CRDTs (DeCandia et al., SOSP 2007;
Almeida, Shoker, Baquero 2018). The replica holds in memory every object, the *delta log*,
per-partition *summaries*, hints and what it knows of its peers. Inputs are method calls
carrying ``now`` (the caller's clock); outputs are effects (:mod:`sync.effects`) drained
with :meth:`Replica.effects` and executed **in order**, plus :meth:`Replica.next_deadline`
(when to call :meth:`Replica.tick`). It never reads a clock, sleeps, opens a socket or
touches a database; its only randomness is a ``random.Random`` seeded from
``config.seed``, the replica id and the construction time.

* **Objects.** An object is named by its key *and* its kind (as riak_dt's map fields are
  ``{name, type}``). A key is normally written as one kind; two peers that wrote it offline
  as two kinds both keep theirs, and both objects replicate everywhere the same way (no
  refusal, no dropped link). Such a *kind clash* is reported once
  (:class:`~sync.effects.KindClashFound`) and listed by :meth:`Replica.status`; a local
  write to the key raises :class:`~sync.errors.KindClash` naming both kinds, while reads of
  each kind work, so the application can look at both before deleting one.
* **Keys, partitions, homes.** ``partition_of(key)`` names a key's partition; the ring over
  the *homes* (this replica if ``config.home``, and every known, not-forgotten peer that is
  one) gives each partition ``n`` *home* replicas (:mod:`sync.ring`). A short-lived replica
  says it is not a home (``peer_up(..., home=False)``, from its handshake, and in gossip):
  it is never a home or a fallback, and nobody waits for it; a peer knows it only while
  linked to it (gossip corrects a peer that takes it for a home, and teaches no one of it):
  the sessions a group served leave no member behind. A non-home coordinator keeps
  its writes as hints for every home; with no home known at all, it keeps them in its log
  (never compacted) and hands them to the homes it meets.
* **Membership changes are operators' actions** on one replica: :meth:`Replica.forget`
  (which refuses an unknown id, raises an :class:`~sync.effects.Alarm` naming who asked)
  and :meth:`Replica.unforget`; no message of a peer forgets anyone. A home not seen for
  ``home_down_window`` is reported (an alarm, ``status()["homes_down"]``) and no longer
  holds compaction back; our own hints for it go once a live home has their writes; it
  catches up by state transfer when it returns, and what was removed meanwhile stays
  removed (:mod:`sync.replica.compaction` says why).
* **Log dots.** Each local mutation gets the log dot ``(self, partition, seq)``, ``seq`` one
  above the highest of ours in that partition. The log holds every delta applied here, from
  any origin, until compaction; a partition's *summary* is the :class:`crdt.CausalContext`
  of the log dots applied here (gaps allowed).
* **Effects of one drain** (every input since the previous :meth:`effects`) hold at most one
  :class:`~sync.effects.Persist`, with every durable change of those inputs, placed before
  the effects of the first input that changed something durable; sends, acks and
  completions follow it, so "persist before acknowledge" holds (draining after each input
  gives one Persist per input, first among its effects). A relay's forwards of other
  origins' entries are the exception: ``Send(early=True)`` at the very front of the drain,
  since they depend on nothing it makes durable (an adapter that commits several drains at
  once may send them ahead of the earlier drains' sends too, as the node's executor does:
  entries join in any order and a receiver takes gaps, so no send depends on another's
  order). Pushes queued for a peer until the
  next drain are coalesced into one ``Push`` (at most ``ae_batch`` entries and about half of
  ``max_message_bytes`` each); an ``Ack`` of a push id acknowledges every operation it
  carried (an ``AckExcept``, every one but those whose entries it names). A key changed by
  several inputs of one drain gets one ``Changed`` (at its first change).
* **Writes** (:meth:`local_update`) persist locally first and never fail for lack of network.
  The local ack counts if this replica is a home of the key, or always in sloppy mode.
  Homes that are up get a ``Push``; for each home that is down, sloppy mode picks a fallback
  (an up relay first, else the next up non-home peer clockwise) and sends it the entry with
  ``hint_for=<home>``; its ack counts and is reported as hinted. A coordinator that is not a
  home keeps the entry as a hint for every home too (delivered by hinted handoff), because
  anti-entropy only runs between homes. ``strict=True``: only home acks count, no
  fallbacks. ``LOCAL_QUORUM``: only acks from peers of ``config.site`` count. The write
  completes (``WriteDone``) at ``w`` acks, or fails (``WriteFailed``) at its deadline, or as
  soon as no ack that could still count is outstanding and no link is still being dialled
  (fail fast, like Cassandra's "unavailable"; :meth:`Replica.links_connecting` is the
  adapter's dial state). A write short of its acks re-targets when a peer comes up: a peer
  that is a home of the key now (perhaps unknown until its handshake) gets the entry, and
  its ack counts. A delta that would not fit in one message (``max_message_bytes``, less
  :data:`~sync.config.MESSAGE_ENVELOPE`) is refused before anything changes
  (:class:`~sync.errors.ValueTooLarge`).
* **Hints.** A fallback persists the hint and acks. Hints are handed off as ``Push`` batches
  of ``ae_batch`` when the target is up (on ``peer_up``, then on each ack, retried every
  ``write_timeout``) and dropped on its ack; hints older than ``hint_window`` or beyond
  ``hint_max_per_target`` per target or ``hint_max_bytes`` for all (oldest first) are
  dropped and left to anti-entropy. A non-home coordinator's hints of its *own* entries are
  exempt from all three limits: anti-entropy would not carry them (it runs between homes),
  so they go only when a home (or a relay, for a home we do not reach) holds them.
* **Reads** (:meth:`local_read`) ask this replica (same counting rule as writes) and the up
  homes (sloppy: fallbacks for the down ones), join the replies, complete at ``r`` replies
  with ``ReadDone``, and repair every replier whose state differs from the join (late
  repliers too, until all replied or the deadline). The join is merged and checkpointed
  locally. Fewer than ``r`` replies at the deadline (or when nobody else can reply and no link
  is being dialled): ``ReadFailed`` with what came. A reply or a repair whose state would
  not fit in one message is not sent (an ``Alarm``): the asker counts that replica as silent,
  and anti-entropy brings the state, cut into pieces.
* **Propagation.** Who holds which log dot is known from the peers' summaries and, since,
  from their acks (a home that acked a push applied it; a fallback that acked holds a hint):
  :meth:`Replica.whereabouts` says where a write or a key is durable now, and
  :meth:`Replica.status` counts our own entries not yet known to be at every home.
* **Liveness.** A deleted object (its kind's ``clear``) is kept, as the CRDT state that
  makes the delete win against what it saw, but it is not *live*: :meth:`Replica.keys`
  leaves it out.
* **Anti-entropy.** With ``anti_entropy_interval`` set, on ``peer_up`` and every interval
  each up peer gets a ``Summary`` of the partitions both are homes of (and, when membership
  changed, the known peers); the homes of a partition we hold but are no longer a home of
  get it too, while their last summary lacks something of ours (the ring grew:
  ``AntiEntropy.hand_over``). A summary is answered with the log entries the other lacks, in
  ``Deltas`` of at most ``ae_batch`` entries (and half of ``max_message_bytes``),
  ``ae_max_inflight`` unacked per peer; when the
  other lacks a dot this replica no longer has in its log (compacted, or received by state
  transfer) it gets a state transfer instead: the partition's objects read from the store a
  page at a time (a :class:`~sync.effects.ReadPage` the adapter answers with
  :meth:`Replica.snapshot_page`, once the ``Persist`` before it is durable), one page ahead
  of the window, in ``SnapshotChunk`` of at most ``snapshot_chunk`` objects; a state too big
  for one message goes as the pieces its type splits it into, cut from its stored text
  entry by entry (``crdt._split_text``, by ``CRDT.split``'s rules: the whole object is never
  decoded to be sent), merged as deltas. The last chunk of a partition (sent only once the
  partition's other messages are acked; other partitions' chunks fill the window meanwhile)
  carries our summary; the receiver takes a chunk only of a partition it sent us its summary
  of, and of that summary a bounded part (``anti_entropy.taken_summary``). Each
  ``Deltas`` and chunk says how much of the round is left (``remaining``): the receiver
  reports a round of more than one message as a catch-up (:class:`~sync.effects.CatchUp`
  at its start and end; :meth:`Replica.status` lists those under way). A summary with
  ``reply=True`` is answered with our own summary only when its sender has something we
  lack (no ping-pong); converged peers exchange summaries only.
* **Compaction** (causal stability, never a timer): for partition ``p`` and origin ``o`` the
  watermark is the minimum of ``vv[o]`` over our own summary and the last reported summary
  of every other home of ``p`` (but homes gone past ``home_down_window``); nothing is
  compacted while such a home has never reported. Log entries at or below it are dropped
  in a ``Persist`` that also checkpoints their keys.
* **A bounded cache of objects.** Objects are held in a cache of ``config.cache_bytes``
  (estimated), least recently used first (:mod:`~sync.replica.local_data`); each drain
  evicts past the budget, checkpointing an evicted object that changed since its last
  checkpoint in that drain's ``Persist``, so an object not in the cache is complete in the
  store. Before an input, the adapter asks :meth:`Replica.wants_keys` (a local write or
  read) or :meth:`Replica.wants_message` (a received message) which keys must be loaded;
  loads them from the store (after every ``Persist`` drained so far is durable) and hands
  them over with :meth:`Replica.admit`; then feeds the input. A replica that holds every
  object (fresh, or loaded whole from a small store) wants nothing until it first evicts.
  A state transfer's state of a key held nowhere here (not in the cache, and the store
  cannot hold it) never enters the cache: its text as received is the drain's ``Persist``
  row, and the key is on demand once the drain ends (an input of the same drain that
  touches it takes it into the cache first). Objects a transfer brings into the cache
  otherwise leave it at the end of the drain (checkpointed), so a bootstrap passes through
  the cache instead of filling it.
  :meth:`Replica.checkpoint_all` at a clean close
  checkpoints every changed object and marks the store's log as folded into its objects.
* **Checkpoints.** Every ``checkpoint_every`` log entries a ``Persist`` carries whole-object
  checkpoints of the keys changed since their own last checkpoint by at least three times
  as many entries as they had then (a growing key is re-encoded at geometrically growing
  intervals: O(size) in all). Keys changed without a log entry (repair, state transfer) and
  keys whose entries are compacted are checkpointed at once; a transferred state adopted
  whole is checkpointed as the text it came as, unless its key changed again since or the
  text is big enough ever to be served in pieces (then it is encoded in our own layout).
* **Clock skew.** A received entry or state carrying a hybrid-logical-clock timestamp (an LWW
  register's, also inside a map) more than ``max_clock_skew`` ahead of ``now`` is *set
  aside*: not applied, not logged, not held as a hint, and counted per writer in
  ``status()["clock_skew"]`` with an :class:`~sync.effects.Alarm` (at most one per writer
  every ten minutes). A ``Push`` with such an entry is acked but for it (``AckExcept``
  names its position: its sender keeps the entry, and a non-home coordinator its hints,
  while the writes beside it in the push complete), a ``Deltas`` is (our next summary still
  lacks the entry), a snapshot chunk with such a state is neither applied nor acked (its round
  restarts later), a repair is dropped and a read reply counts without its state. Set
  aside, not refused: the other entries of the message are applied and the link stays, and
  anti-entropy offers the entry again every round until our clock comes within the bound of
  it, so every replica converges; refusing it for ever would block anti-entropy for ever.
  Meanwhile nothing stops local writes: a register over a timestamp ahead of our clock is
  written at that wall time with the logical part counting (:func:`crdt.hlc.write_timestamp`).
* **Signed origins** (:mod:`sync.signing`). A replica given a ``signer`` (its id is then
  the one its key derives) seals its entries when they first leave it: at the end of each
  drain, before any of it is executed, the entries of its origin that the drain's messages
  carry unsealed get one :class:`~sync.signing.Seal` per :data:`~sync.signing.SEAL_MAX` of
  them (or the seal its log holds for them, if sent before), set on every object of the
  entry in the drain. Its own log entries are stored unsealed until then (the store has the
  seal if it was set before the commit of the drain that writes them: sent in that drain,
  or in a later one committed with it), and sealed whenever they are sent, after a restart
  too (again, if it was not stored), while it keeps its id; its hints are sealed
  when stored (a hint may be the only copy of a write, and a replica whose id changes, a
  restored copy, loses the key of the old one). A replica writing offline as a home signs
  nothing until it syncs. It refuses any received entry not
  covered by a valid seal of its origin (:mod:`~sync.replica.inbound`), and anti-entropy
  sends a state transfer rather than an entry it holds unsealed (from before signing).
  A replica without a signer (tests, the simulator) neither seals nor checks.
* **An ack means applied.** A home acks a ``Push`` once every entry in it is in its state:
  an entry whose log dot it already had in its log was applied from the same signed entry;
  one whose dot it knows only from a summary (a state transfer) or whose log entry was
  compacted has its delta joined again first (a no-op when it is in the state already).
* **Identity.** A peer's summary holding a log dot of ours above our highest one means this
  database was restored or copied: :class:`~sync.effects.IdentityConflict` is emitted and our
  numbering jumps above the seen dot.

Bad remote input raises :class:`~sync.errors.RemoteProtocolError` from :meth:`Replica.receive`
before anything changes; bad local arguments raise ``TypeError``/``ValueError``/
:class:`~sync.errors.LocalProtocolError`, also before anything changes. ``now`` values are
clamped to be non-decreasing.

Knows no other component (it is text).
"""

__all__: list[str] = []
