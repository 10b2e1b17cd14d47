"""Wrong answers per exercise: every checker must reject at least one (a checker that accepts
anything is a defect). Each module `nbXX_*.py` defines WRONG_ANSWERS: {exercise name: [source]}."""
