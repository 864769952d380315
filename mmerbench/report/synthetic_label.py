"""How every report marks numbers from the synthetic twins (``synth-*``): one label and one note,
shared by the leaderboards and the papers' tables so that the two always say the same thing."""

SYNTHETIC_LABEL = "synthetic"
SYNTHETIC_NOTE = ("Synthetic twin: generated data with the real set's shapes and a planted signal, for testing the "
                  "harness; not comparable with published numbers.")
