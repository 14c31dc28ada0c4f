"""Member cards: what a replica says of itself (address, site, home), signed with its key.

Members learn one another from gossip: each summary may list the members its sender knows
(:class:`~sync.messages.PeerInfo`). What a member is told of a *known* peer there (where it
listens, its site, whether it is a home) used to be taken from whichever member said it,
so one member could point a peer's address elsewhere on every other peer, move it to
another site (so that its acknowledgements counted for the wrong ``LOCAL_QUORUM``), or take
it off the ring. A *card* is a replica's own statement of those fields, signed with the key
its id is derived from (:func:`crdt.replica_id_for`, as its log entries are in
:mod:`sync.signing`), so whoever passes it on cannot alter it:

* a card carries ``key`` (the signer's public key, base64), ``at`` and ``sig`` (its Ed25519
  signature, base64) beside the fields; the signature covers a fixed domain, the id, the
  fields and ``at``;
* ``at`` orders one replica's cards: the newer one wins. It starts at the wall clock in
  milliseconds when the replica starts; a replica told of a card of its own that is not
  older than its current one (its clock went back since it signed that one) signs a new one
  above it, so the order holds without a persisted counter or a right clock (at most one
  such card every :data:`RESIGN_EVERY` seconds: two runs of one id, a restored copy started
  beside it, would each sign above the other's, round after round, for ever);
* a signing replica changes what it holds of a known peer from gossip only by a valid card
  of that peer newer than the one it holds; a listing without a card can still introduce a
  peer not known yet (a member can invent members: see the threat model in the docs), and
  what a peer says in its own handshake is first-hand as before;
* an invalid card (a key that is not the id's, a signature that does not verify) is proof
  of a faulty or hostile sender, since every replica checks a card before it passes one on:
  its message is refused.

:class:`Cards` holds this replica's own card and the newest valid card of each peer, and
checks the cards a message lists (each one verified once: :meth:`Cards.check` remembers
what it verified, and takes a card equal to the one it holds as verified).

The card held of a known peer is persisted with its record (:func:`card_text`, the
record's ``card``) and held again when the records are loaded (:meth:`Cards.restore`):
else, after a restart, a member could replay an older card of that peer (its former
address or site, validly signed) and have it taken, since none would be held to compare
it with.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from crdt import replica_id_for
from sync import messages as m
from sync.signing import Signer, public_key_of

__all__ = ["MAX_AT", "RESIGN_EVERY", "Cards", "card_fields", "card_payload", "card_text"]

_DOMAIN: Final = b"shoal-member-card/1\x00"
#: The largest ``at`` a card may carry (the wire's bound on counts).
MAX_AT: Final = m.SEQ_LIMIT
#: Seconds between two cards a replica signs above cards of its own signed elsewhere.
RESIGN_EVERY: Final = 600.0
_MEMO: Final = 4096  # cards remembered as verified (cleared when full)


def card_payload(
    replica_id: str, address: str | None, site: str | None, home: bool, at: int
) -> bytes:
    """The bytes a card's signature covers."""
    fields = json.dumps([replica_id, address, site, home, at], separators=(",", ":"))
    return _DOMAIN + fields.encode("utf-8", "surrogatepass")


def card_fields(card: m.PeerInfo) -> str:
    """What ``card`` says of its replica, as JSON (the home flag: being on the ring)."""
    return json.dumps([card.address, card.site, card.home], separators=(",", ":"))


def card_text(info: m.PeerInfo) -> str:
    """The card ``info`` as JSON text, as a peer record keeps it (:meth:`Cards.restore`)."""
    return info.model_dump_json()


def _rank(card: m.PeerInfo) -> tuple[int, str]:
    """The order of one replica's cards: the newer ``at``, then the greater signature."""
    return card.at, card.sig or ""


def _signature(info: m.PeerInfo) -> bytes:
    try:
        return base64.b64decode(info.sig or "", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("its signature is not base64") from None


class Cards:
    """This replica's card and the newest valid card of each peer.

    ``signer``: this replica's key (None: an engine that does not sign has no card of its
    own, and gossip changes what it knows of peers as it comes, as before cards).
    """

    __slots__ = (
        "_address",
        "_answered",
        "_at",
        "_held",
        "_home",
        "_me",
        "_own",
        "_signer",
        "_site",
        "_verified",
        "contested",
        "resigned",
    )

    def __init__(
        self, replica_id: str, signer: Signer | None, site: str | None, home: bool, now_ms: int
    ) -> None:
        self._me = replica_id
        self._signer = signer
        self._address: str | None = None
        self._site = site
        self._home = home
        self._at = max(1, min(now_ms, MAX_AT))
        self._held: dict[str, m.PeerInfo] = {}
        self._verified: set[m.PeerInfo] = set()  # whole cards: every field as verified
        self._own: m.PeerInfo | None = None
        self._answered = float("-inf")  # when seen_own last signed above a card of ours
        #: A card of this replica newer than its own that :meth:`seen_own` left unanswered
        #: (signed by another run of this replica id); the reader sets it back to None.
        self.contested: m.PeerInfo | None = None
        self._sign()
        #: This replica signed a new card since the last :meth:`take_resigned` (not the
        #: first: a card made at the start goes out with the first summaries).
        self.resigned = False

    @property
    def signs(self) -> bool:
        """True when this replica has a key (changes of known peers then need their cards)."""
        return self._signer is not None

    def own(self) -> m.PeerInfo:
        """This replica as it lists itself in gossip: its card, or its fields unsigned."""
        if self._own is not None:
            return self._own
        return m.PeerInfo.model_construct(
            replica_id=self._me, address=self._address, site=self._site, home=self._home
        )

    def announce(self, address: str | None) -> bool:
        """This replica listens at ``address`` (None: it does not listen): a new card if that
        changed it. True when it did."""
        if address == self._address:
            return False
        self._address = address
        self._at = min(self._at + 1, MAX_AT)
        self._sign()
        return True

    def take_resigned(self) -> bool:
        """True (once) when this replica signed a new card since last asked."""
        resigned, self.resigned = self.resigned, False
        return resigned

    def _sign(self) -> None:
        signer = self._signer
        if signer is None:
            return
        rid, at = self._me, self._at
        sig = signer.sign(card_payload(rid, self._address, self._site, self._home, at))
        self._own = m.PeerInfo.model_construct(
            replica_id=rid,
            address=self._address,
            site=self._site,
            home=self._home,
            key=signer.public_key_text,
            at=at,
            sig=base64.b64encode(sig).decode("ascii"),
        )
        self.resigned = True

    def check(self, info: m.PeerInfo) -> str | None:
        """Why the card ``info`` lists is not valid (None when it is, or when ``info`` carries
        no signature: an unsigned listing). Each valid card is verified once."""
        if info.sig is None:
            return None
        if info in self._verified or self._held.get(info.replica_id) == info:
            return None  # (the one held was verified: gossip lists it again and again)
        rid, at = info.replica_id, info.at
        if info.key is None:
            return "a signature without its key"
        if type(at) is not int or not 1 <= at <= MAX_AT:
            return f"its 'at' ({at!r}) is out of range"
        try:
            key = public_key_of(info.key)
            signature = _signature(info)
        except ValueError as exc:
            return str(exc)
        if replica_id_for(key) != rid:
            return f"its key is not the key of {rid!r}"
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(
                signature, card_payload(rid, info.address, info.site, info.home, at)
            )
        except InvalidSignature:
            return f"the signature of {rid!r} does not verify"
        if len(self._verified) >= _MEMO:
            self._verified.clear()
        self._verified.add(info)
        return None

    def newer(self, info: m.PeerInfo) -> bool:
        """True when ``info`` is a card (checked by :meth:`check`) newer than the one held of
        its replica, or the first one. Of two cards of one ``at`` (two runs of one id that
        started in the same millisecond), the one with the greater signature is newer: every
        peer holds the same one."""
        if info.sig is None or self.check(info) is not None:
            return False  # (checked again if the memo was cleared since: it is not a proof)
        held = self._held.get(info.replica_id)
        return held is None or _rank(info) > _rank(held)

    def hold(self, info: m.PeerInfo) -> None:
        """Keep the card ``info`` as its replica's newest."""
        self._held[info.replica_id] = info

    def restore(self, replica_id: str, text: str) -> bool:
        """Hold again the card of ``replica_id`` its record kept (:func:`card_text`), unless
        one at least as new is held. It is verified here, once (and taken as verified from
        then on): a card spoilt in the store, passed on in gossip, would get this replica's
        messages refused as a hostile member's. False when it is not a valid card of
        ``replica_id`` (then nothing is held)."""
        try:
            info = m.PeerInfo.model_validate_json(text)
        except ValueError:
            return False
        if info.replica_id != replica_id or info.sig is None or self.check(info) is not None:
            return False
        if self.newer(info):
            self._held[replica_id] = info
        return True

    def behind(self, listed: Iterable[m.PeerInfo]) -> bool:
        """True when a member's list (its cards checked) shows a replica whose card held here
        is newer than the one listed, or lists it without one: its sender lacks what we
        hold, and is to be sent our list (else a newer card reached a member only over a
        link of its own to the replica it is of). Never for an engine that does not sign."""
        if self._signer is None:
            return False
        held, me = self._held, self._me
        for info in listed:
            mine = self._own if info.replica_id == me else held.get(info.replica_id)
            if mine is not None and (info.sig is None or _rank(info) < _rank(mine)):
                return True
        return False

    def held(self, replica_id: str) -> m.PeerInfo | None:
        """The newest card held of ``replica_id``."""
        return self._held.get(replica_id)

    def drop(self, replica_id: str) -> None:
        """Forget the card of ``replica_id`` (the peer is no longer known)."""
        self._held.pop(replica_id, None)

    def seen_own(self, info: m.PeerInfo, now: float) -> bool:
        """A peer listed a card of this replica (checked by :meth:`check`): when it is not
        older than the current one (the clock went back since it was signed, or another
        run of this replica signed it), sign a newer one. True when it did. Once every
        :data:`RESIGN_EVERY` seconds at most (else ``info`` is left in :attr:`contested`):
        a past run signed finitely many, but another run beside this one answers each."""
        if self._signer is None or info.sig is None or info.at < self._at:
            return False
        if info == self._own:
            return False
        if now - self._answered < RESIGN_EVERY:
            self.contested = info
            return False
        self._answered = now
        self._at = min(info.at + 1, MAX_AT)
        self._sign()
        return True
