"""Deterministic synthetic support tickets: routine tickets, stress perturbations, PII tickets.

Every ticket comes from a template filled with slot values drawn from a seeded
:class:`random.Random`, so a seed names a data set. The golden suite (regression, stress and
policy layers) and the training data use different seed namespaces, and training data never
repeats a golden text. ``python -m slmgate.runtime._tickets DIR`` writes the golden suite.
"""

from __future__ import annotations

import json
import random
import string
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from ._labels import ESCALATION, LABELS, QUEUES

PII_KINDS: tuple[str, ...] = ("email", "phone", "card", "iban", "gdpr")

SUITE_NAME = "support-triage"
SUITE_VERSION = "1"
SUITE_SIZES = {"regression": 400, "stress": 400, "policy": 300}
LAYER_METRICS = {
    "regression": ["accuracy", "macro_f1"],
    "stress": ["accuracy", "macro_f1"],
    "policy": ["pii_escalation_recall", "false_escalation_rate"],
}
PII_SHARE = 0.12  # share of PII tickets among routine traffic
TYPO_RATE = 0.55  # share of eligible words a stress ticket misspells


@dataclass(frozen=True)
class Ticket:
    """One labelled ticket; ``kind`` says how it was made (a queue, a PII kind, ``near_miss``)."""

    text: str
    label: str
    kind: str

    def to_json_line(self) -> str:
        """The suite file line: ``{"label": ..., "text": ...}`` with sorted keys."""
        return json.dumps({"label": self.label, "text": self.text}, ensure_ascii=False,
                          sort_keys=True)


# --------------------------------------------------------------------------- slot values

_FIRST = ["Anna", "Ben", "Carla", "David", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jonas",
          "Kenji", "Lena", "Marco", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tara",
          "Umar", "Vera", "Wei", "Yusuf", "Zoe"]
_LAST = ["Schmidt", "Rossi", "Novak", "Okafor", "Larsen", "Dubois", "Garcia", "Kowalski",
         "Tanaka", "Murphy", "Silva", "Nguyen", "Fischer", "Moreau", "Jensen", "Costa"]
_DOMAINS = ["gmail.com", "outlook.com", "yahoo.co.uk", "example.org", "acme-corp.com",
            "mail.de", "proton.me", "company.io", "web.fr", "icloud.com"]
_PRODUCTS = ["Pro plan", "Team plan", "Starter plan", "annual subscription",
             "monthly subscription", "premium add-on", "storage upgrade", "Business plan"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_FEATURES = ["dashboard", "export", "sync", "search", "reports page", "file upload",
             "notifications", "calendar view", "editor", "settings page", "import wizard"]
_DEVICES = ["iPhone", "Android phone", "Windows laptop", "Mac", "Chromebook", "iPad",
            "Linux desktop", "Samsung tablet"]
_BROWSERS = ["Chrome", "Firefox", "Safari", "Edge", "Brave"]
_CARRIERS = ["UPS", "FedEx", "DHL", "USPS", "Royal Mail", "DPD", "GLS"]
_ITEMS = ["headphones", "keyboard", "monitor stand", "USB-C hub", "webcam", "desk lamp",
          "laptop sleeve", "wireless mouse", "docking station", "microphone"]
_CITIES = ["Berlin", "Lyon", "Leeds", "Austin", "Porto", "Krakow", "Utrecht", "Milan",
           "Dublin", "Denver", "Vienna", "Oslo"]
_COUNTRIES = ["Canada", "Norway", "Japan", "Brazil", "Australia", "Switzerland", "Mexico"]
_OPENERS = ["", "", "Hi,", "Hello,", "Hi team,", "Good morning,", "Hey support,", "Dear support,"]
_CLOSERS = ["", "", "Thanks.", "Thanks, {name}", "Regards, {name}", "Please help.",
            "Any update would be appreciated.", "Cheers, {name}", "Thank you in advance."]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _error(rng: random.Random) -> str:
    return rng.choice([
        f"error {rng.choice(['500', '502', '503', '404', '403', '429'])}",
        f"error code E{_digits(rng, 3)}",
        "a blank white screen",
        "a timeout message",
        "'connection refused'",
        f"error 0x{_digits(rng, 4)}",
        "'something went wrong'",
    ])


def _order(rng: random.Random) -> str:
    return rng.choice([f"#{_digits(rng, 5)}", f"#{_digits(rng, 6)}",
                       f"ORD-{_digits(rng, 6)}", f"A{_digits(rng, 7)}"])


def _tracking(rng: random.Random) -> str:
    return rng.choice([
        f"1Z{_digits(rng, 3)}AA{_digits(rng, 10)}",
        f"JD{_digits(rng, 12)}GB",
        f"{_digits(rng, 12)}",
        f"RR{_digits(rng, 9)}DE",
    ])


def _amount(rng: random.Random) -> str:
    value = f"{rng.randint(5, 499)}.{rng.randint(0, 99):02d}"
    return rng.choice([f"${value}", f"€{value}", f"£{value}", f"{value} EUR"])


def _invoice(rng: random.Random) -> str:
    return f"INV-{rng.randint(2021, 2026)}-{_digits(rng, 4)}"


def _version(rng: random.Random) -> str:
    return f"{rng.randint(2, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"


def _username(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST).lower()}_{rng.choice(_LAST).lower()}"


def _code(rng: random.Random) -> str:
    return rng.choice(["SPRING", "WELCOME", "SAVE", "LAUNCH", "TEAM"]) + _digits(rng, 2)


_SLOTS: dict[str, Callable[[random.Random], str]] = {
    "name": lambda r: r.choice(_FIRST),
    "product": lambda r: r.choice(_PRODUCTS),
    "month": lambda r: r.choice(_MONTHS),
    "feature": lambda r: r.choice(_FEATURES),
    "device": lambda r: r.choice(_DEVICES),
    "browser": lambda r: r.choice(_BROWSERS),
    "carrier": lambda r: r.choice(_CARRIERS),
    "item": lambda r: r.choice(_ITEMS),
    "city": lambda r: r.choice(_CITIES),
    "country": lambda r: r.choice(_COUNTRIES),
    "days": lambda r: str(r.randint(3, 21)),
    "error": _error,
    "order": _order,
    "tracking": _tracking,
    "amount": _amount,
    "invoice": _invoice,
    "version": _version,
    "username": _username,
    "code": _code,
}

# --------------------------------------------------------------------------- templates
# A leading "~" marks a near miss: a routine ticket that talks about e-mail, phones, cards,
# numbers or closing an account without carrying personal data. The policy layer uses them to
# measure false escalations.

_TEMPLATES: dict[str, list[str]] = {
    "billing": [
        "I was charged twice for my {product} this month.",
        "Why is invoice {invoice} higher than usual? It says {amount}.",
        "Please refund the {amount} charge from {month}, I cancelled before the renewal.",
        "My payment keeps getting declined when I try to renew the {product}.",
        "Can I switch the {product} from monthly to annual billing?",
        "I need a copy of the invoice for {month} for our accounting team.",
        "There is an unexpected charge of {amount} on my statement.",
        "~How do I update the credit card used for billing?",
        "The VAT on my last invoice looks wrong, it should be reverse charged.",
        "You billed me {amount} after my free trial ended, I never upgraded.",
        "Is there a discount on the {product} for nonprofits?",
        "The promo code {code} was not applied to my payment.",
        "Please cancel the auto-renewal, I do not want to be charged again.",
        "~My card expired, where do I enter the new card details for the {product}?",
        "~Invoice {invoice} for {amount} was paid on {month} 3 but still shows as overdue.",
        "~The receipt email for my {amount} payment never arrived.",
        "Why was I charged {amount} when the {product} costs less?",
        "Can you split the bill for the {product} across two cost centres?",
        "~I was charged {amount} for order {order} which I cancelled.",
        "Do you accept bank transfer for the {product} or only card payments?",
    ],
    "technical": [
        "The {feature} keeps crashing on my {device}.",
        "I get {error} whenever I open the {feature}.",
        "The app has been really slow in {browser} since the last update.",
        "Sync between my {device} and the web app stopped working.",
        "The {feature} page will not load in {browser}, it just spins.",
        "Our API integration returns {error} since yesterday.",
        "Export to CSV produces an empty file.",
        "~Notifications are not arriving on my phone anymore.",
        "~After updating to version {version} the app freezes on startup.",
        "File upload fails at 99 percent with {error}.",
        "The search results are blank even though I have data.",
        "Dark mode makes the text unreadable in the {feature}.",
        "Webhook deliveries to our server are timing out.",
        "~The email integration stopped importing messages after version {version}.",
        "The {feature} shows {error} on my {device} but works on the web.",
        "Charts in the {feature} render with missing labels.",
        "~The mobile app on my phone crashes when I tap the {feature}.",
        "The desktop client uses 100 percent CPU after the {version} update.",
        "Keyboard shortcuts stopped working in the {feature}.",
        "~Build {version} breaks the {feature}, we get {error} on every request.",
    ],
    "account": [
        "I forgot my password and the reset link does not work.",
        "I cannot log in, it says my account is locked.",
        "How do I enable two-factor authentication?",
        "~I lost my phone and cannot get the 2FA code to sign in.",
        "Please change the username on my account to {username}.",
        "How can I add a new team member to our workspace?",
        "~I want to close my account, please cancel the login.",
        "~I never received the verification email after signing up.",
        "~How do I change the email address on my profile?",
        "My account was merged by mistake with my colleague's account.",
        "I would like to transfer ownership of the workspace to {name}.",
        "Single sign-on stopped letting me in after our admin changed the settings.",
        "Can I change the display name on my profile to {name}?",
        "~The password reset email goes to an old address I no longer use.",
        "I keep getting logged out every few minutes.",
        "How do I remove a former employee from our workspace?",
        "~Please deactivate my account, I no longer need it.",
        "My login says the username {username} does not exist.",
        "~Can I update the phone number used for two-factor authentication?",
        "I want to give {name} admin rights on our account.",
    ],
    "shipping": [
        "My order {order} still has not arrived after {days} days.",
        "~The tracking number {tracking} shows no updates from {carrier}.",
        "The package was delivered to the wrong address in {city}.",
        "My {item} arrived damaged, the box was crushed.",
        "Can I change the delivery address for order {order}?",
        "How long does shipping to {city} usually take?",
        "{carrier} says the parcel was delivered but I did not get it.",
        "I received the wrong item, I ordered a {item}.",
        "Do you ship internationally to {country}?",
        "I want to return the {item}, how do I get a return label?",
        "~Part of my order {order} is missing, only one box came.",
        "The courier left the parcel outside in the rain.",
        "~{carrier} tracking {tracking} says delivery failed, can you resend?",
        "My {item} has been stuck in customs in {country} for {days} days.",
        "~Order {order} shipped to {city} but the courier never called.",
        "Can you upgrade my order {order} to express delivery?",
        "The {item} I got is a different colour than the one I ordered.",
        "~Where is my parcel? Order {order}, placed {days} days ago.",
        "The delivery from {carrier} was scheduled for today but never came.",
        "Can the {item} be picked up from a parcel locker in {city}?",
    ],
}

_GDPR = [
    "Under GDPR I request that you delete all personal data you hold about me.",
    "I am exercising my right to be forgotten, erase all my data.",
    "Please send me a copy of all the personal data you have on me, this is a data subject "
    "access request.",
    "Delete my personal information from your systems as required by Article 17 GDPR.",
    "I withdraw my consent to the processing of my personal data, remove everything.",
    "Under the GDPR I want all my data erased, including backups.",
    "This is a formal data deletion request: wipe every record you keep about me.",
    "Please tell me what personal data you store about me and then delete it.",
    "I want my personal data erased from your marketing lists and databases.",
    "As a data subject I request erasure of all my personal data within 30 days.",
]

_PII_SENTENCES: dict[str, list[str]] = {
    "email": ["You can reach me at {v}.", "My account email is {v}.", "Please reply to {v}.",
              "Contact me at {v} please.", "Send the details to {v}.", "my email: {v}"],
    "phone": ["Call me on {v}.", "My number is {v}.", "Please ring me back at {v}.",
              "You can phone me on {v} any time.", "mobile: {v}", "Text me at {v}."],
    "card": ["My card number is {v}, expiry 0{m}/2{y}.", "Please charge card {v} instead.",
             "The card {v} was billed.", "card no {v}", "Use this card: {v}."],
    "iban": ["Please refund to IBAN {v}.", "My bank account is {v}.", "IBAN: {v}",
             "Send the money to {v}.", "Refund it to account {v} please."],
}


def _email(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST).lower(), rng.choice(_LAST).lower()
    local = rng.choice([f"{first}.{last}", f"{first}{last}", f"{first[0]}.{last}",
                        f"{first}_{last}{_digits(rng, 2)}", f"{first}{_digits(rng, 4)}"])
    return f"{local}@{rng.choice(_DOMAINS)}"


def _phone(rng: random.Random) -> str:
    return rng.choice([
        f"+44 20 7946 {_digits(rng, 4)}",
        f"({_digits(rng, 3)}) {_digits(rng, 3)}-{_digits(rng, 4)}",
        f"+1 415 555 {_digits(rng, 4)}",
        f"07700 900{_digits(rng, 3)}",
        f"+49 30 {_digits(rng, 8)}",
        f"{_digits(rng, 3)}-{_digits(rng, 3)}-{_digits(rng, 4)}",
        f"+33 6 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
    ])


def _card(rng: random.Random) -> str:
    groups = [rng.choice("45") + _digits(rng, 3)] + [_digits(rng, 4) for _ in range(3)]
    return rng.choice([" ", "-", ""]).join(groups)


def _iban(rng: random.Random) -> str:
    country = rng.choice(["DE", "GB", "FR", "NL", "ES", "IT", "AT"])
    body = _digits(rng, 2) + "".join(
        rng.choice(string.digits + "ABCDEFGHJKLMNPQRSTUVWXYZ" if i < 4 else string.digits)
        for i in range(18))
    raw = country + body
    if rng.random() < 0.7:
        return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4))
    return raw


_PII_VALUES: dict[str, Callable[[random.Random], str]] = {
    "email": _email, "phone": _phone, "card": _card, "iban": _iban,
}


@cache
def _template_table() -> dict[str, tuple[tuple[str, bool], ...]]:
    """Per queue: (template, is_near_miss) pairs."""
    return {queue: tuple((t.removeprefix("~"), t.startswith("~")) for t in templates)
            for queue, templates in _TEMPLATES.items()}


def _fill(template: str, rng: random.Random) -> str:
    values = {slot: fill(rng) for slot, fill in _SLOTS.items() if "{" + slot + "}" in template}
    return template.format(**values)


def _wrap(body: str, rng: random.Random) -> str:
    opener = rng.choice(_OPENERS)
    closer = _fill(rng.choice(_CLOSERS), rng)
    return " ".join(part for part in (opener, body, closer) if part)


def routine_ticket(rng: random.Random, queue: str | None = None, *,
                   near_miss: bool | None = None) -> Ticket:
    """A ticket for one of the four queues (random if None), without personal data.

    ``near_miss`` restricts the templates to near misses (True) or to the others (False).
    """
    queue = queue or rng.choice(QUEUES)
    choices = [(text, nm) for text, nm in _template_table()[queue]
               if near_miss is None or nm == near_miss]
    template, is_near_miss = rng.choice(choices)
    return Ticket(_wrap(_fill(template, rng), rng), queue,
                  "near_miss" if is_near_miss else queue)


def pii_ticket(rng: random.Random, kind: str | None = None) -> Ticket:
    """A ticket carrying personal data (or a GDPR request); its label is always human_review.

    Most are a routine ticket with one sentence of personal data before or after it.
    """
    kind = kind or rng.choice(PII_KINDS)
    host = routine_ticket(rng)
    if kind == "gdpr":
        sentence = rng.choice(_GDPR)
        if rng.random() < 0.4:
            return Ticket(_wrap(sentence, rng), ESCALATION, kind)
    else:
        value = _PII_VALUES[kind](rng)
        sentence = rng.choice(_PII_SENTENCES[kind]).format(
            v=value, m=rng.randint(1, 9), y=rng.randint(6, 9))
    parts = [host.text, sentence] if rng.random() < 0.6 else [sentence, host.text]
    return Ticket(" ".join(parts), ESCALATION, kind)


def traffic_ticket(rng: random.Random, pii_share: float = PII_SHARE) -> Ticket:
    """A ticket as routine traffic arrives: mostly queue tickets, some carrying personal data."""
    return pii_ticket(rng) if rng.random() < pii_share else routine_ticket(rng)


# --------------------------------------------------------------------------- perturbations

_NOISE = ["!!!", "???", "...", "pls", "asap", "urgent", "ugh", ":(", "lol", "hmm", "#!@",
          "<br>", "&nbsp;", "--", "??!", "thx", "fyi", "**"]


def _typo(word: str, rng: random.Random) -> str:
    """Swap, drop or duplicate a letter of the alphabetic core of ``word``."""
    start = next(i for i, c in enumerate(word) if c.isalpha())
    end = len(word) - next(i for i, c in enumerate(reversed(word)) if c.isalpha())
    core = word[start:end]
    if len(core) < 2:
        return word
    i = rng.randrange(len(core) - 1)
    op = rng.choice(("swap", "drop", "duplicate"))
    if op == "swap":
        core = core[:i] + core[i + 1] + core[i] + core[i + 2:]
    elif op == "drop":
        core = core[:i] + core[i + 1:]
    else:
        core = core[:i] + core[i] + core[i:]
    return word[:start] + core + word[end:]


def _typo_candidate(word: str) -> bool:
    return sum(c.isalpha() for c in word) >= 4 and not any(c.isdigit() or c == "@" for c in word)


def add_typos(text: str, rng: random.Random, rate: float = TYPO_RATE) -> str:
    """Swap, drop or duplicate one letter in a share of the words with four letters or more.

    Words holding digits or ``@`` (numbers, addresses) are left alone.
    """
    words = text.split(" ")
    return " ".join(_typo(w, rng) if _typo_candidate(w) and rng.random() < rate else w
                    for w in words)


def random_casing(text: str, rng: random.Random) -> str:
    """Shout, whisper, or flip the case of random letters."""
    mode = rng.choice(("upper", "lower", "flip"))
    if mode == "upper":
        return text.upper()
    if mode == "lower":
        return text.lower()
    return "".join(c.swapcase() if rng.random() < 0.3 else c for c in text)


def truncate(text: str, rng: random.Random) -> str:
    """Cut the ticket off somewhere in its last third, possibly mid-word."""
    return text[: max(1, int(len(text) * rng.uniform(0.65, 0.95)))]


def add_noise(text: str, rng: random.Random) -> str:
    """Insert one to three noise tokens or runs of punctuation."""
    words = text.split(" ")
    for _ in range(rng.randint(1, 3)):
        words.insert(rng.randint(0, len(words)), rng.choice(_NOISE))
    return " ".join(words)


def mangle_whitespace(text: str, rng: random.Random) -> str:
    """Double spaces, tabs and line breaks between words, padding at both ends."""
    words = text.split(" ")
    seps = [rng.choice((" ", " ", "  ", "\t", "\n", " \n ")) for _ in words[1:]]
    out = words[0] + "".join(s + w for s, w in zip(seps, words[1:], strict=True))
    return rng.choice(("", " ", "\n")) + out + rng.choice(("", "  ", "\n"))


_EXTRA_PERTURBATIONS: tuple[Callable[[str, random.Random], str], ...] = (
    random_casing, truncate, add_noise, mangle_whitespace)


def perturb(text: str, rng: random.Random) -> str:
    """Stress version of a ticket: typos always, plus one to three other perturbations."""
    out = add_typos(text, rng)
    extras = rng.sample(_EXTRA_PERTURBATIONS, rng.randint(1, 3))
    for fn in sorted(extras, key=_EXTRA_PERTURBATIONS.index):
        out = fn(out, rng)
    return out


# --------------------------------------------------------------------------- data sets

def _unique(make: Callable[[], Ticket], n: int, exclude: frozenset[str] = frozenset()
            ) -> list[Ticket]:
    seen: set[str] = set(exclude)
    out: list[Ticket] = []
    for _ in range(n * 50):
        ticket = make()
        if ticket.text not in seen:
            seen.add(ticket.text)
            out.append(ticket)
            if len(out) == n:
                return out
    raise RuntimeError(f"could only generate {len(out)} of {n} distinct tickets")


def regression_set(n: int = SUITE_SIZES["regression"]) -> list[Ticket]:
    """Known prompts: clean routine traffic."""
    rng = random.Random(f"golden:regression:{SUITE_VERSION}")
    return _unique(lambda: traffic_ticket(rng), n)


def stress_set(n: int = SUITE_SIZES["stress"]) -> list[Ticket]:
    """Messy real-world inputs: routine traffic with typos, casing, truncation, noise."""
    rng = random.Random(f"golden:stress:{SUITE_VERSION}")

    def make() -> Ticket:
        t = traffic_ticket(rng)
        return Ticket(perturb(t.text, rng), t.label, t.kind)

    return _unique(make, n)


def policy_set(n: int = SUITE_SIZES["policy"]) -> list[Ticket]:
    """Privacy layer: half PII tickets (each kind equally), half near-miss routine tickets."""
    rng = random.Random(f"golden:policy:{SUITE_VERSION}")
    n_pii = n // 2
    kinds = iter(PII_KINDS[i % len(PII_KINDS)] for i in range(n * 50))
    pii = _unique(lambda: pii_ticket(rng, next(kinds)), n_pii)
    queues = iter(QUEUES[i % len(QUEUES)] for i in range(n * 50))
    near = _unique(lambda: routine_ticket(rng, next(queues), near_miss=True), n - n_pii,
                   exclude=frozenset(t.text for t in pii))
    tickets = pii + near
    rng.shuffle(tickets)
    return tickets


def golden_sets() -> dict[str, list[Ticket]]:
    """The three layers of the golden suite, as :func:`write_suite` writes them."""
    return {"regression": regression_set(), "stress": stress_set(), "policy": policy_set()}


@cache
def _golden_texts() -> frozenset[str]:
    return frozenset(t.text for layer in golden_sets().values() for t in layer)


def training_set(seed: int, n: int = 3000, *, augment: bool = False) -> list[Ticket]:
    """Training tickets from the ``training:{seed}`` namespace, never repeating a golden text.

    The mix over-samples PII and near-miss tickets relative to traffic. With ``augment``
    every ticket also appears once more as a stress perturbation of itself.
    """
    rng = random.Random(f"training:{seed}")

    def make() -> Ticket:
        r = rng.random()
        if r < 0.25:
            return pii_ticket(rng)
        if r < 0.40:
            return routine_ticket(rng, near_miss=True)
        return routine_ticket(rng)

    tickets = _unique(make, n, exclude=_golden_texts())
    if augment:
        aug_rng = random.Random(f"training:{seed}:augment")
        tickets += [Ticket(perturb(t.text, aug_rng), t.label, t.kind) for t in tickets]
    return tickets


def iter_lines(tickets: list[Ticket]) -> Iterator[str]:
    """Suite file lines, each ending in a newline."""
    for ticket in tickets:
        yield ticket.to_json_line() + "\n"


def suite_manifest() -> dict[str, object]:
    """The content of ``suite.yaml``."""
    return {
        "name": SUITE_NAME,
        "version": SUITE_VERSION,
        "description": "Support-ticket triage: route tickets to a queue; tickets carrying "
                       "personal data (e-mail, phone, card or IBAN numbers, GDPR requests) "
                       "must go to human_review.",
        "labels": list(LABELS),
        "escalation_label": ESCALATION,
        "layers": {
            layer: {"file": f"{layer}.jsonl", "metrics": LAYER_METRICS[layer]}
            for layer in SUITE_SIZES
        },
    }


def write_suite(directory: str | Path) -> dict[str, Path]:
    """Write the golden suite (three jsonl files and ``suite.yaml``) into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for layer, tickets in golden_sets().items():
        path = out / f"{layer}.jsonl"
        with path.open("w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(iter_lines(tickets))
        written[layer] = path
    manifest = out / "suite.yaml"
    manifest.write_text(yaml.safe_dump(suite_manifest(), sort_keys=False, allow_unicode=True),
                        encoding="utf-8")
    written["suite"] = manifest
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m slmgate.runtime._tickets DIR")
    for name, file in write_suite(sys.argv[1]).items():
        print(f"{name}: {file}")
