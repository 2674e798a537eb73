"""Small hand-written seed files for fuzzing composition, next to copies of the bundled policies.

Shared by the hypothesis properties (tests/fuzz/test_fuzz_mutations.py) and the atheris
seed corpus (fuzz/make_corpus.py).
"""

from __future__ import annotations

__all__ = ["CYCLES", "EXTENSIONS", "TENANTS"]

#: Small extensions of default.policy, one or two features of composition each.
EXTENSIONS = (
    b'policy child { version: "2.0.0" extends: "default.policy" disable: [last_warning] }\n',
    b'policy child { extends: "default.policy" }\n'
    b"override param redirects_before_end { value: 4 }\n"
    b'override param end_message { value: "Bye." }\n',
    b'policy child { extends: "default.policy" }\n'
    b'override list minors { add: ["tot"] remove: ["kid"] }\n'
    b'override list second_person = ["you"]\n'
    b"override pattern end_request = /\\bstop now\\b/\n",
    b'policy child { extends: "default.policy" }\n'
    b'override category csam { severity: high add_unless: keywords ["art"] }\n'
    b"override signal asks_to_end { add_detect: pattern end_request }\n"
    b"override counter failed_redirects { reset: after 6 benign turns }\n"
    b'override rule end_on_request { message: "Ending." locked: true }\n',
    b'policy child { extends: "default.policy" }\n'
    b'param limit { value: 3 tunable: [2, 5] locked: lower-only description: "x" }\n'
    b"rule extra { when: failed_redirects >= limit within limit turns then: warn "
    b"message: end_message }\n",
    b'policy child { extends: "default.policy" }\n'
    b"override rule end_persistent_extreme_harm { when: failed_redirects >= 1 }\n"
    b"override protection imminent_risk { locked: false }\n"
    b"override param redirects_before_end { value: 1 }\n",
    b'import shared { from: "default.policy" names: [minors, how_to, csam] }\n'
    b'policy solo { version: "1" }\n',
)
#: Files that name each other: mutating one keeps the cycle or breaks it.
CYCLES = {
    "a.policy": b'policy a { extends: "b.policy" }\noverride param p { value: 1 }\n',
    "b.policy": b'policy b { extends: "a.policy" }\nparam p { value: 2 tunable: [1, 3] }\n',
    "self.policy": b'policy self { extends: "self.policy" }\n',
    "imp.policy": b'import i { from: "imp2.policy" names: [x] }\npolicy imp { }\n',
    "imp2.policy": b'import i { from: "imp.policy" names: [y] }\nlist x = ["a"]\n',
}
#: Small tenant files for security_research.policy: valid, out of range, unknown names.
TENANTS = (
    b"tenant t { set: { redirects_before_end: 5 } }\n",
    b'tenant t { version: "1" policy: security_research set: { end_message: "Bye." } }\n',
    b"tenant t { set: { redirects_before_end: 1 redirects_before_warning: 99 } }\n",
    b"tenant t { policy: other set: { nothing: 1 end_message: 2 } }\n",
    b"tenant a { }\ntenant b { }\n",
)
