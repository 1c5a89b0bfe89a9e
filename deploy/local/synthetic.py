"""Synthetic surge caseloads and hosts, with documented distributions and fixed seeds.

The same generator feeds the surge scenario, the tests and the matching benchmarks, so what the
benchmarks measure is what a newcomer watches. No real person's data is in here: households are
pseudonymous attribute sets drawn from the distributions below.

Households
    size 1: 30 %, 2: 20 %, 3: 18 %, 4: 15 %, 5: 10 %, 6–8: 7 % (an adult first, then adults and children)
    urgency emergency 3 %, urgent 12 %, normal 85 %; at least one vulnerability flag 20 %
    a medical need (one of MEDICAL_NEEDS) 12 %; needs an accessible unit 5 %; needs language support 35 %
    each adult seeks work in one of OCCUPATIONS with probability 60 %
    0–3 preferred places among the pool's places; a tie (relatives) to one place 25 %
Hosts
    type by program (see PROGRAM_HOST_TYPES); one of the pool's five places
    sponsor group 3–8 people, municipality 10–40, employer 4–15 with 2–8 jobs, education 3–10 study places
    beds = people; accessible units 0–2 (municipalities 1–6); medical services: each 30 %
    language support 40 %; 1–3 languages
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from schemas.events import Capacity, CaseProfile, HostProfile, HouseholdMember, Needs, Urgency

URGENCIES: list[Urgency] = ["emergency", "urgent", "normal"]

MEDICAL_NEEDS = ("dialysis", "mental_health", "mobility", "chronic_care")
OCCUPATIONS = ("nurse", "electrician", "teacher", "driver", "cook", "carer", "engineer", "farmer")
LANGUAGES = ("uk", "ar", "prs", "ps", "en", "fr", "ru")
VULNERABILITIES = ("single_parent", "unaccompanied_minor", "survivor_of_violence", "older_person", "disability")
PROGRAM_HOST_TYPES: dict[str, tuple[str, ...]] = {
    "sponsorship": ("sponsor_group",),
    "municipal": ("municipality", "sponsor_group"),
    "labour": ("employer",),
    "education": ("education_institution",),
}


@dataclass(frozen=True)
class Pool:
    pool_id: str
    program: str
    places: tuple[str, ...]


def pools(count: int = 4) -> list[Pool]:
    """``count`` pools, one program x region each, five places in each region."""
    programs = list(PROGRAM_HOST_TYPES)
    regions = ("north", "south", "east", "west", "central", "coast")
    result = []
    for index in range(count):
        program = programs[index % len(programs)] if count > 1 else "sponsorship"
        region = regions[index % len(regions)]
        result.append(Pool(f"{program}.{region}", program, tuple(f"{region}-town-{n}" for n in range(1, 6))))
    return result


def household(rng: random.Random) -> list[HouseholdMember]:
    size = rng.choices([1, 2, 3, 4, 5, rng.randint(6, 8)], weights=[30, 20, 18, 15, 10, 7])[0]
    members = [HouseholdMember(age_band=rng.choice(["18-29", "30-49", "50-64"]),
                               sex=rng.choice(["female", "male"]), relationship="applicant")]
    for _ in range(size - 1):
        if rng.random() < 0.35:
            members.append(HouseholdMember(age_band=rng.choice(["18-29", "30-49", "50-64", "65+"]),
                                           sex=rng.choice(["female", "male"]), relationship="adult"))
        else:
            members.append(HouseholdMember(age_band=rng.choice(["0-4", "5-11", "12-17"]),
                                           sex=rng.choice(["female", "male"]), relationship="child"))
    return members


def case_profile(rng: random.Random, pool: Pool) -> CaseProfile:
    members = household(rng)
    adults = sum(1 for m in members if m.age_band in ("18-29", "30-49", "50-64"))
    return CaseProfile(
        members=members,
        needs=Needs(
            medical=[rng.choice(MEDICAL_NEEDS)] if rng.random() < 0.12 else [],
            accessible=rng.random() < 0.05,
            language_support=rng.random() < 0.35,
        ),
        languages=rng.sample(LANGUAGES, rng.randint(1, 2)),
        occupations=sorted({rng.choice(OCCUPATIONS) for _ in range(adults) if rng.random() < 0.6}),
        wants_study=pool.program == "education" or rng.random() < 0.05,
        preferred_places=rng.sample(pool.places, rng.randint(0, 3)),
        tie_places=[rng.choice(pool.places)] if rng.random() < 0.25 else [],
        urgency=rng.choices(URGENCIES, weights=[3, 12, 85])[0],
        vulnerabilities=[rng.choice(VULNERABILITIES)] if rng.random() < 0.2 else [],
    )


def host_profile(rng: random.Random, pool: Pool) -> HostProfile:
    host_type = rng.choice(PROGRAM_HOST_TYPES[pool.program])
    people = {"sponsor_group": (3, 8), "municipality": (10, 40), "employer": (4, 15),
              "education_institution": (3, 10)}[host_type]
    size = rng.randint(*people)
    jobs = ({rng.choice(OCCUPATIONS): rng.randint(1, 4) for _ in range(rng.randint(1, 3))}
            if host_type == "employer" else {})
    return HostProfile(
        host_type=host_type,  # type: ignore[arg-type]
        place=rng.choice(pool.places),
        capacity=Capacity(
            people=size,
            beds=size,
            accessible_units=rng.randint(1, 6) if host_type == "municipality" else rng.randint(0, 2),
            school_places=rng.randint(0, max(1, size // 2)),
            jobs=jobs,
            study_places=rng.randint(3, 10) if host_type == "education_institution" else 0,
        ),
        medical_services=[need for need in MEDICAL_NEEDS if rng.random() < 0.3],
        language_support=rng.random() < 0.4,
        languages=rng.sample(LANGUAGES, rng.randint(1, 3)),
        max_household_size=None if host_type == "municipality" else rng.choice([None, 4, 6, 8]),
    )


def case_registration(rng: random.Random, pool: Pool, index: int, organisation_id: str = "org-centre-desk") -> dict[
    str, Any
]:
    """The body of ``POST /cases`` for one synthetic household (with a synthetic, clearly fake identity)."""
    return {
        "organisation_id": organisation_id,
        "external_ref": f"surge-case-{index}",
        "pool_id": pool.pool_id,
        "language": rng.choice(["en", "uk", "ar", "prs", "nl"]),
        "profile": case_profile(rng, pool).model_dump(mode="json"),
        "identity": {"full_name": f"Synthetic Person {index:05d}", "email": f"case{index}@example.org"},
    }


def host_registration(rng: random.Random, pool: Pool, index: int) -> dict[str, Any]:
    return {
        "organisation_id": f"org-partner-{index % 7}",
        "external_ref": f"surge-host-{index}",
        "pool_id": pool.pool_id,
        "profile": host_profile(rng, pool).model_dump(mode="json"),
    }
