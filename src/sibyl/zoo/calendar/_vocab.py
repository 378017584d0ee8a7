"""Word lists for the calendar generator: 30 words per class and a shared pool of 200.

The class lists are disjoint from each other and from the shared pool, so a title's class signal
comes only from the tokens drawn from its class list (probability 0.7 per token).
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


CLASS_WORDS: dict[str, tuple[str, ...]] = {
    "meeting": _words(
        "sync standup review planning kickoff retro roadmap status quarterly sprint demo "
        "alignment budget strategy allhands townhall workshop brainstorm committee board "
        "briefing steering proposal offsite agenda minutes stakeholder governance okr "
        "triage"
    ),
    "focus": _words(
        "focus deepwork coding writing research drafting analysis headsdown concentration "
        "prep solo thinking reading documentation refactor debugging spec report notebook "
        "experiment prototype study outline backlog quiet nomeetings blocked maker "
        "flowtime heads"
    ),
    "one-on-one": _words(
        "oneonone 1on1 checkin mentoring coaching feedback career growth manager mentor "
        "mentee skiplevel catchup chat touchbase performance goals development onboarding "
        "buddy pairing connect conversation private reflection promotion appraisal "
        "weekly1on1 sitdown guidance"
    ),
    "personal": _words(
        "dentist doctor gym yoga pickup kids school haircut groceries errands birthday "
        "anniversary vet pharmacy laundry therapy appointment physio run swim bank "
        "repair plumber daycare parents meditation nap optician pilates chores"
    ),
    "travel": _words(
        "flight airport train taxi uber hotel boarding commute drive layover departure "
        "arrival terminal gate rentalcar trip transfer shuttle visa passport luggage "
        "baggage ferry bus station roadtrip journey itinerary outbound redeye"
    ),
    "social": _words(
        "lunch dinner drinks happyhour party coffee brunch bbq celebration farewell "
        "welcome outing picnic boardgames trivia karaoke bowling concert movie wedding "
        "reunion potluck volunteer meetup networking gala cocktails festival hike "
        "games"
    ),
}
"""Thirty words per class; title tokens come from here with probability 0.7."""

SHARED_WORDS: tuple[str, ...] = _words(
    # people
    "alex sam jordan taylor morgan casey riley jamie robin chris pat lee kim dana "
    "maria john anna peter laura david sarah michael emma lucas nina omar priya chen "
    "yuki ivan "
    # time words
    "monday tuesday wednesday thursday friday saturday sunday morning afternoon evening "
    "tonight today tomorrow january february march april may june july august september "
    "october november december week month quarter year early late noon "
    # generic modifiers
    "quick short long new old final first second third next last follow up updated "
    "tentative optional important urgent hold placeholder moved rescheduled cancelled "
    "confirmed pending draft maybe probably again extra "
    # generic nouns
    "call time slot session item thing stuff note notes plan idea topic question "
    "discussion details info notice reminder event block hour part round "
    "phase step task todo list project program initiative team people folks crew everyone "
    "group "
    # organisations, projects, places
    "acme globex initech umbrella hooli vandelay stark wayne apollo atlas phoenix "
    "orion zephyr nova titan mercury jupiter saturn neptune pluto downtown uptown "
    "north south east west central london paris berlin madrid boston austin denver "
    "seattle tokyo alpha beta gamma delta sigma omega q1 q2 q3 q4 h1 h2 "
    # filler
    "with and for the a of at in on to about from re fw via per re: misc general "
    "other some more all"
)
"""About 200 words shared by every class; title tokens come from here with probability 0.3."""

DESCRIPTION_OPENERS: tuple[str, ...] = (
    "Please join",
    "Reminder:",
    "Blocked for",
    "Note:",
    "Added by assistant:",
    "Calendar hold for",
    "Placeholder for",
    "As discussed,",
)
DESCRIPTION_CLOSERS: tuple[str, ...] = (
    "see you there.",
    "details to follow.",
    "let me know if the time does not work.",
    "no preparation needed.",
    "bring your laptop.",
    "link in the invite.",
    "",
)
