"""Building the reference components' artifacts (the lab stand-ins under components/).

"Components" lives in three places; this is the builder. The stand-ins' source is the
repository's `components/` (one directory per component); what a site deploys, and the rules
it must meet, is the site model's `components:` (opsctl/site/schema.py ComponentSpec,
checked in opsctl/site/model.py); deploying them is opsctl/deploy/.
"""
