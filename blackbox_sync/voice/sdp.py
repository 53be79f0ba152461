"""SDP rewriting between the live service's SIP-style offers and aiortc (pure text, no aiortc).

The live ``sdpInvite`` comes from a SIP stack (pjmedia): profile ``RTP/SAVP``, G.711 PCMU/PCMA
plus ``telephone-event``, DTLS-SRTP, ICE, possibly no ``a=mid`` and no BUNDLE group
(PROTOCOL.md §6, research facts §5). aiortc parses such an offer, but it always answers with
``UDP/TLS/RTP/SAVPF`` and a mid, so the client rewrites its answer to echo the offer's profile
(JSEP, RFC 8829 §5.3.1: the answer's ``<proto>`` must match the offer's) and leaves the mid out
when the offer had none. The emulator uses :func:`pjmedia_style` to make its aiortc offer look
like the live one, and :func:`restore_mids` to hand its aiortc the mids it expects back.
"""

import re
from typing import List, Optional, Sequence, Tuple

import attrs

from blackbox_sync.errors import VoiceError

# Static RTP payload types a SIP stack may list without an ``a=rtpmap`` line (RFC 3551).
STATIC_AUDIO_TYPES = {0: "PCMU/8000", 8: "PCMA/8000", 9: "G722/8000"}
SRTP_PROFILES = ("RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF")
_M_LINE = re.compile(r"^m=(\S+) (\d+)(?:/\d+)? (\S+)(?: (.*))?$")


class SdpError(VoiceError, ValueError):
    """An SDP that cannot carry a call (no audio section, no ICE credentials, no DTLS)."""


@attrs.frozen
class OfferInfo:
    """What the client must echo or respect when it answers an offer."""

    profiles: Tuple[str, ...]
    """The ``<proto>`` of each m-line, in order (``RTP/SAVP`` from the live service)."""
    has_mid: bool
    """Whether the offer named its media sections (``a=mid``); SIP stacks often do not."""
    codecs: Tuple[str, ...]
    """The audio codecs offered, by name (``PCMU``, ``PCMA``, ``telephone-event``...)."""


def split_lines(sdp: str) -> List[str]:
    """The SDP's lines without line endings or blank lines (CRLF, LF or a mix)."""
    return [line.strip() for line in sdp.replace("\r\n", "\n").split("\n") if line.strip()]


def join_lines(lines: Sequence[str]) -> str:
    """An SDP from lines: CRLF after every line, as RFC 4566 wants."""
    return "".join(line + "\r\n" for line in lines)


def _sections(lines: Sequence[str]) -> Tuple[List[str], List[List[str]]]:
    session: List[str] = []
    media: List[List[str]] = []
    for line in lines:
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        else:
            session.append(line)
    return session, media


def _join_sections(session: List[str], media: List[List[str]]) -> str:
    return join_lines(session + [line for section in media for line in section])


def _m_line(line: str) -> Tuple[str, str, str, List[str]]:
    match = _M_LINE.match(line)
    if match is None:
        raise SdpError(f"malformed media line: {line!r}")
    kind, port, proto, fmt = match.groups()
    return kind, port, proto, (fmt or "").split()


def inspect_offer(sdp: str) -> OfferInfo:
    """Read what the answer must mirror; raises :class:`SdpError` if the offer has no audio."""
    lines = split_lines(sdp)
    if not lines or not lines[0].startswith("v="):
        raise SdpError("not an SDP (no v= line)")
    _, media = _sections(lines)
    profiles = tuple(_m_line(section[0])[2] for section in media)
    audio = [section for section in media if section[0].startswith("m=audio ")]
    if not audio:
        raise SdpError("the offer has no audio section")
    codecs: List[str] = []
    for fmt in _m_line(audio[0][0])[3]:
        name = _codec_name(audio[0], fmt)
        if name is not None:
            codecs.append(name)
    has_mid = any(line.startswith("a=mid:") for section in media for line in section)
    return OfferInfo(profiles=profiles, has_mid=has_mid, codecs=tuple(codecs))


def _codec_name(section: Sequence[str], fmt: str) -> Optional[str]:
    prefix = f"a=rtpmap:{fmt} "
    for line in section:
        if line.startswith(prefix):
            return line[len(prefix) :].split("/")[0]
    if fmt.isdigit() and int(fmt) in STATIC_AUDIO_TYPES:
        return STATIC_AUDIO_TYPES[int(fmt)].split("/")[0]
    return None


def prepare_offer(sdp: str) -> str:
    """Rewrite an offer so aiortc takes it: name static payload types (PCMU/PCMA without
    ``a=rtpmap``), give unnamed media sections a mid, and lower-case fingerprint algorithms
    (pjmedia writes ``SHA-256``; older aiortc compares case-sensitively)."""
    session, media = _sections(split_lines(sdp))
    session = [_lower_fingerprint(line) for line in session]
    has_mid = any(line.startswith("a=mid:") for section in media for line in section)
    for index, section in enumerate(media):
        kind, _, _, fmts = _m_line(section[0])
        section[1:] = [_lower_fingerprint(line) for line in section[1:]]
        if kind == "audio":
            for fmt in fmts:
                named = any(line.startswith(f"a=rtpmap:{fmt} ") for line in section)
                if fmt.isdigit() and int(fmt) in STATIC_AUDIO_TYPES and not named:
                    section.append(f"a=rtpmap:{fmt} {STATIC_AUDIO_TYPES[int(fmt)]}")
        if not has_mid:
            section.append(f"a=mid:{index}")
    return _join_sections(session, media)


def _lower_fingerprint(line: str) -> str:
    if line.startswith("a=fingerprint:"):
        algorithm, _, value = line[len("a=fingerprint:") :].partition(" ")
        return f"a=fingerprint:{algorithm.lower()} {value}"
    return line


def shape_answer(answer: str, offer: OfferInfo) -> str:
    """Make aiortc's answer fit the offer: echo each m-line's profile, and drop the mids and
    BUNDLE group that :func:`prepare_offer` invented when the offer had none."""
    session, media = _sections(split_lines(answer))
    for index, section in enumerate(media):
        kind, port, proto, fmts = _m_line(section[0])
        if index < len(offer.profiles):
            proto = offer.profiles[index]
        section[0] = " ".join([f"m={kind}", port, proto, *fmts])
        if not offer.has_mid:
            section[1:] = [
                line
                for line in section[1:]
                if not line.startswith("a=mid:") and "rtp-hdrext:sdes:mid" not in line
            ]
    if not offer.has_mid:
        session = [line for line in session if not line.startswith("a=group:BUNDLE")]
    return _join_sections(session, media)


def pjmedia_style(offer: str, *, profile: str = "RTP/SAVP", telephone_event: int = 101) -> str:
    """Make an aiortc offer look like the live service's (emulator side): ``profile`` on the
    audio m-line, ``telephone-event`` offered, ``a=ptime:20``, and no mid, BUNDLE, msid or
    header extensions, which a SIP stack does not write. ICE and DTLS lines stay."""
    session, media = _sections(split_lines(offer))
    session = [
        "s=pjmedia" if line.startswith("s=") else line
        for line in session
        if not line.startswith(("a=group:", "a=msid-semantic:"))
    ]
    for section in media:
        kind, port, _, fmts = _m_line(section[0])
        if kind != "audio":
            continue
        event = str(telephone_event)
        section[0] = " ".join([f"m={kind}", port, profile, *fmts, event])
        section[1:] = [
            line
            for line in section[1:]
            if not line.startswith(("a=mid:", "a=msid:", "a=extmap:", "a=end-of-candidates"))
        ]
        maps = [i for i, line in enumerate(section) if line.startswith(("a=rtpmap:", "a=fmtp:"))]
        at = maps[-1] + 1 if maps else len(section)
        section[at:at] = [
            f"a=rtpmap:{event} telephone-event/8000",
            f"a=fmtp:{event} 0-16",
            "a=ptime:20",
        ]
    return _join_sections(session, media)


def restore_mids(answer: str, mids: Sequence[str]) -> str:
    """Give an answer's media sections the mids of the offer they answer, where it has none
    (emulator side: its aiortc checks that the answer's sections match its own offer)."""
    session, media = _sections(split_lines(answer))
    for section, mid in zip(media, mids):
        if not any(line.startswith("a=mid:") for line in section):
            section.append(f"a=mid:{mid}")
    return _join_sections(session, media)


def candidates(sdp: str) -> List[str]:
    """The ``a=candidate`` values of an SDP (to check that gathering finished before sending)."""
    return [
        line[len("a=candidate:") :] for line in split_lines(sdp) if line.startswith("a=candidate:")
    ]
