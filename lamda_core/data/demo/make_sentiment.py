"""Writes the built-in demo sentiment data (lamda_core/data/demo/sentiment_{train,validation}.tsv).

Short product and film reviews composed for LaMDA Studio from hand-written phrase banks: each
review pairs a subject with an opinion clause and, often, a detail or a contrast; some positive
reviews use negated negative words ("not boring at all") and some negative ones negated praise
("not worth it"), so a bag of words is not enough. Balanced, seeded, fixed split (400 / 100).
Run `python lamda_core/data/demo/make_sentiment.py` to regenerate the same files.
"""
import random
from pathlib import Path

SUBJECTS = ["The film", "This movie", "The sequel", "The documentary", "This album", "The novel", "The game",
            "This phone", "The blender", "The headphones", "The hotel", "The restaurant", "The course",
            "This series", "The play", "The app", "The jacket", "The coffee maker", "The tour", "The podcast"]
POSITIVE = ["was a genuine delight", "exceeded every expectation I had", "made my whole week",
            "is worth every penny", "felt warm and honest", "was beautifully made", "kept me hooked to the end",
            "works exactly as promised", "is the best purchase I made this year", "left me smiling for hours",
            "was not boring at all", "turned out far better than the trailer suggested",
            "has a clever, surprising story", "was quiet, careful and moving", "did not disappoint",
            "is sturdy and well designed", "was a pleasure from start to finish", "deserves all the praise",
            "feels fresh even on a second visit", "was money well spent"]
NEGATIVE = ["was a complete waste of time", "fell apart within a week", "bored me to tears",
            "is not worth it", "felt cheap and rushed", "was badly made", "lost me after ten minutes",
            "never works as promised", "is the worst purchase I made this year", "left me annoyed for hours",
            "was not good at all", "turned out far worse than the trailer suggested",
            "has a lazy, predictable story", "was loud, sloppy and empty", "was a real letdown",
            "is flimsy and poorly designed", "was a chore from start to finish", "deserves none of the hype",
            "feels stale even the first time", "was money thrown away"]
DETAILS = ["", "", "", " The staff were friendly.", " The ending surprised me.", " Delivery took three days.",
           " I watched it with my sister.", " The price was fair.", " The colours are exactly as pictured.",
           " It runs for about two hours.", " I would tell my friends.", " The sound is clear.",
           " We went on a rainy Sunday.", " The instructions were short."]
CONTRAST_POS = [" I expected to hate it, but I was wrong.", " Some scenes drag, yet it all pays off.",
                " The start is slow, but stick with it."]
CONTRAST_NEG = [" The cover looks great, but that is all.", " A promising idea, badly executed.",
                " I wanted to love it, but I could not."]


def reviews(label: int, count: int, rng: random.Random) -> list[str]:
    opinions, contrasts = (POSITIVE, CONTRAST_POS) if label == 1 else (NEGATIVE, CONTRAST_NEG)
    seen = set()
    while len(seen) < count:
        text = f"{rng.choice(SUBJECTS)} {rng.choice(opinions)}.{rng.choice(DETAILS)}"
        if rng.random() < 0.25:
            text += rng.choice(contrasts)
        seen.add(text)
    return sorted(seen)


def main() -> None:
    rng = random.Random(2406)
    rows = [(text, "positive") for text in reviews(1, 250, rng)] + [(text, "negative") for text in reviews(0, 250, rng)]
    rng.shuffle(rows)
    folder = Path(__file__).parent
    for name, part in (("train", rows[:400]), ("validation", rows[400:])):
        lines = ["sentence\tlabel"] + [f"{text}\t{label}" for text, label in part]
        (folder / f"sentiment_{name}.tsv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
