# The admin console (templates/admin/*.html, src/admin/console). Technical names stay
# as they are in every language: event types (user.created), form and JSON field names
# (password.min_length), protocol values (client_secret_basic), URLs and addresses.
# A $field is such a name; a $detail or $why is the admin service's own English words.

## Every page

console-title = Admin console
console-find-a-user = Find a user
console-your-organisation = Your organisation
console-audit-trail = Audit trail
console-emergency-reviews = Emergency access reviews
console-identity-providers = Identity providers
console-ip-blocks = IP blocks
console-fhir-servers = FHIR servers

## Refusals

console-not-an-administrator = The admin console is for administrators, and your account is not one.
console-sign-in-again = Please sign in again.
console-mfa-required = Your organisation requires a second factor for your role: please sign in again.
console-refused-role = Your role does not allow this.
console-refused-peer = You cannot act on a user whose role is equal to or above yours.
console-refused-grant = You cannot grant this role.
console-refused-own-review = You cannot sign off your own emergency access: another administrator must.
console-refused-mapping-role = The account mapping gives a role you cannot grant.
console-refused-connector-linked = An account of a role equal to or above yours is linked to this identity provider: only a super administrator may point it at another one.
console-refused-org-above = A member of this organisation has a role above yours (super administrator): only a super administrator may change its policies.
# A refusal the console has no words of its own for, in the service's English.
console-refused-other = { $why }.
console-not-accepted = Not accepted: { $detail }
console-search-too-long = { $max ->
    [one] Search: at most one character.
   *[other] Search: at most { $max } characters.
}
console-export-format-unknown = Choose an export as CSV or as JSON lines.
console-review-note-missing = Write a note to sign the session off.
console-review-note-invalid = { $max ->
    [one] A review note is one character, on one line, without control characters.
   *[other] A review note is at most { $max } characters, on one line, without control characters.
}
console-confirm-delete-first = Tick the box to confirm the deletion: nothing was deleted.
console-not-a-username = That is not a username.

## Notices after an action

console-notice-unlocked = Sign-in was unlocked.
console-notice-not-locked = Sign-in was not locked.
console-notice-reset = A new password is required: the old one no longer works; the user was mailed a reset link and signed out everywhere.
console-notice-totp-removed = Two-step verification was removed; the user was told by mail.
console-notice-passkey-removed = The passkey was removed; the user was told by mail.
console-notice-fhir-user-set = The user's FHIR resource was set.
console-notice-fhir-user-cleared = The user's FHIR resource was removed.
console-notice-fhir-server-created = The FHIR server was registered.
console-notice-fhir-server-deleted = The FHIR server's registration was removed.
console-notice-no-totp = The user had no two-step verification.
console-notice-session-ended = The session was ended.
console-notice-sessions-ended = Every session of the user was ended.
console-notice-policy-saved = The policies were saved.
console-notice-branding-saved = The branding was saved.
console-notice-logo-saved = The logo was saved.
console-notice-logo-removed = The logo was removed.
console-notice-ip-lifted = The block was lifted.
console-notice-ip-not-blocked = That address was not blocked.
console-notice-reviewed = The emergency session was signed off.
console-notice-emergency-granted = The user may now use emergency access.
console-notice-emergency-already = The user was already designated for emergency access.
console-notice-emergency-withdrawn = The user may no longer use emergency access.
console-notice-emergency-not-designated = The user was not designated for emergency access.
console-notice-connector-created = The identity provider was added.
console-notice-connector-saved = The identity provider was saved.
console-notice-connector-deleted = The identity provider was deleted, with its links.
console-notice-linked = The upstream identity was linked.
console-notice-unlinked = The link was removed.

## Finding a user (home.html)

console-search-label = Username (or part of one) or a whole email address
console-results = Results
console-no-user-matches = No user matches.
console-status = Status
console-sign-in = Sign-in
console-two-step = Two-step
console-locked = locked
console-not-locked-short = open
console-mfa-on = on
console-mfa-off = off
console-search-truncated = { $count ->
    [one] Only the first match is shown: narrow the search.
   *[other] Only the first { $count } matches are shown: narrow the search.
}
console-organisations = Organisations
console-status-active = active
console-status-disabled = disabled
console-status-invited = invited

## A user (user.html)

console-user = User
console-not-locked = not locked
console-enrolled = enrolled
console-not-enrolled = not enrolled
console-must-change-password = New password required at next sign-in
console-yes = yes
console-no = no
console-designated-since = designated since { $since }
console-not-designated = not designated
console-withdraw-emergency = Withdraw emergency access
console-designate-emergency = Designate for emergency access
console-user-audit-events = Audit events of this user
console-user-actions = Actions
console-unlock = Unlock sign-in
console-force-reset = Require a new password
console-remove-totp = Remove two-step verification
console-user-passkeys = Passkeys
console-no-passkey = No passkey.
console-passkey-synced = synced
console-passkey-one-device = one device
console-remove-passkey = Remove passkey { $name }
console-fhir-identities = FHIR identities
# Followed by the claim's name, fhirUser.
console-fhir-identities-intro = Who the user is on each FHIR server. Their SMART apps' tokens say it in the claim
console-none = None.
console-fhir-server = FHIR server
console-resource = Resource
console-remove-fhir-user = Remove the resource on { $server }
console-fhir-server-base-url = FHIR server base URL
console-fhir-user-label = Resource (Practitioner/…, Patient/…, RelatedPerson/…, Person/…)
console-set-fhir-user = Set the FHIR resource
console-sessions = Sessions
console-no-sessions = Not signed in anywhere.
console-signed-in-with = With
console-with-passkey = passkey
console-with-password-and-code = password and code
console-with-password = password
console-end-session = End this session
console-end-all-sessions = End every session

## The audit trail (audit.html)

console-audit-filter-refused = These filters cannot be used:
console-audit-user = User (username or id)
console-event-type = Event type
console-any = Any
console-outcome = Outcome
console-outcome-success = success
console-outcome-failure = failure
console-audit-from = From (UTC, inclusive)
console-audit-to = To (UTC, exclusive)
console-order = Order
console-newest-first = Newest first
console-oldest-first = Oldest first
console-show = Show
console-show-newest-first = Show newest first
console-show-oldest-first = Show oldest first
console-export-csv = Export as CSV
console-export-jsonl = Export as JSON lines
console-no-events = No events.
console-time = Time
console-type = Type
console-actor = Actor
console-subject = Subject
console-client-ip = Client IP
console-details = Details
console-newer-events = Newer events
console-older-events = Older events

## An organisation's policies (org.html)

console-policy-not-saved = The policies were not saved. Correct these fields:
console-policy-read-only = Your role may read these policies but not change them.
console-passwords = Passwords
console-min-length = Fewest characters (8 to 128)
console-max-length = Most characters (up to 1024)
console-require-upper = An upper-case letter
console-require-lower = A lower-case letter
console-require-digit-or-symbol = A digit or a symbol
console-min-strength = Lowest strength score (0 to 4; 0 turns the check off)
console-history = Earlier passwords that may not be reused (0 to 24)
console-max-age-days = Days after which a password must be changed (empty: never)
console-lockout = Account lockout
console-lockout-threshold = Failed attempts that lock sign-in (0 turns lockout off)
console-lock-minutes = Minutes a lock lasts
console-permanent-after = Locks in a row after which only an administrator unlocks (0: never)
console-reset-failures-after = Minutes after which old failures are forgotten
console-mfa-and-sessions = Two-step verification and sessions
console-mfa-who = Who must use two-step verification
console-mfa-nobody = Nobody
console-mfa-admins = Administrators and support
console-mfa-everyone = Everyone
console-passkeys-off = Off
console-passkeys-allowed = Allowed for everyone
console-passkeys-required-admins = Required for administrators and support
console-passkeys-required-everyone = Required for everyone
console-phishing-resistant-admins = Administrators' second step must be a passkey (no TOTP)
console-session-idle = Session idle timeout, seconds (60 to 2592000)
console-session-absolute = Session lifetime, seconds (at least the idle timeout)
console-support-email = Support contact for lockout, IP-block and emergency access alerts (empty: none)
console-privacy-officer = Privacy officer, told with the support contact whenever someone breaks the glass (empty: none)
console-emergency-window = Minutes an emergency window stays open (5 to 720; never extended)
console-emergency-overdue = Hours after which an unreviewed emergency session is overdue and mailed about daily (1 to 720)
console-save-policies = Save policies
console-field-whole-number = { $field }: must be a whole number
console-field-email = { $field }: must be an email address
console-field-mfa-choice = { $field }: must be off, admins or everyone
console-field-passkey-mode-choice = { $field }: must be off, allowed, required_for_admins or required_for_everyone

## Emergency access reviews (emergency.html)

console-emergency-intro = Every time someone breaks the glass, a second administrator signs the session off with a note: what was looked at, and whether it was justified. The user who broke the glass never reviews their own.
console-awaiting-review = Awaiting review
console-no-open-reviews = No emergency session awaits review.
console-reason = Reason
console-started = Started
console-ends = Ends
console-asked-for-by = Asked for by
console-sign-off-heading = Sign-off
console-own-review = Your own: another administrator signs it off.
console-note = Note
console-sign-off = Sign off
console-recently-signed-off = Recently signed off
console-none-yet = None yet.
console-signed-off = Signed off
console-by = By
console-window-expired = ended { $at } (time ran out)
console-window-ended-by-user = ended { $at } by the user
console-window-signed-out = ended { $at } (signed out)
console-window-ended = ended { $at }
console-window-open-until = open until { $at }
console-window-lapsed = lapsed { $at }
console-requested-on-account-page = the account page

## IP blocks (ip_blocks.html)

console-blocked-addresses = Blocked addresses
console-no-blocks = No address is blocked.
console-address = Address
console-blocked-until = Blocked until
console-times-blocked = Times blocked
console-why = Why
console-lift = Lift

## FHIR servers (fhir_servers.html)

# Followed by the parameter's name, aud.
console-fhir-servers-intro = FHIR servers that accept Gatehouse's tokens (SMART on FHIR resource servers). Their base URL is the tokens' audience, which clients name as
console-no-fhir-servers = No FHIR server is registered.
console-base-url = Base URL
console-scopes = Scopes
console-clients = Clients
console-remove-fhir-server = Remove { $name }
console-register-fhir-server = Register a FHIR server
console-fhir-scopes-label = Clinical scopes it accepts, separated by spaces (such as patient/*.rs user/Observation.rs)
console-fhir-clients-label = Client ids that may ask for tokens to it, separated by spaces
console-register = Register

## Identity providers (connectors.html, connector.html, connector_form.html)

console-identity-providers-intro = People of an organisation can sign in with the organisation's own identity provider. Each one is registered there as a client, with the callback URL shown on its page.
console-no-connectors = No identity provider yet.
console-in-urls = In URLs
console-protocol = Protocol
console-state = State
console-email-domains = Email domains
console-enabled = enabled
console-disabled = disabled
console-add-identity-provider-heading = Add an identity provider
console-identity-provider = Identity provider
console-sp-metadata-url = SP metadata URL (our entity ID) to register at the identity provider
console-callback-url = Callback URL to register at the identity provider
console-client-secret = Client secret
console-secret-set = set
console-secret-none = none
console-all-identity-providers = All identity providers
console-linked-accounts = Linked accounts
console-no-links = No upstream identity is linked to an account.
console-upstream-identity = Upstream identity
console-account = Account
console-linked = Linked
console-remove-link = Remove link
console-link-heading = Link an upstream identity
console-link-intro = Whoever signs in at the identity provider as this identity signs in here as the account. Accounts are of the identity provider's organisation.
console-link-subject = Upstream identity (the sub claim)
console-link = Link
console-delete-heading = Delete
console-confirm-delete = Delete this identity provider and every link to it; the accounts stay
console-delete = Delete
console-connector-not-added = The identity provider was not added. Correct these fields:
console-connector-not-saved = The identity provider was not saved. Correct these fields:
console-display-name = Name on the sign-in button
console-slug = Name in URLs (1 to 40 of a-z, 0-9 and -)
console-enabled-label = Enabled
console-domains = Email domains whose users are sent here, one per line
console-protocol-oidc = OpenID Connect (fill in the OpenID Connect part)
console-protocol-saml = SAML 2.0 (fill in the SAML part)
console-issuer = Issuer (https)
console-client-id = Client id at the identity provider
console-client-secret-keep = Client secret (one is set: leave empty to keep it)
console-remove-secret = Remove the stored secret
console-client-auth = Client authentication
console-client-auth-basic = Secret, HTTP Basic (client_secret_basic)
console-client-auth-post = Secret in the body (client_secret_post)
console-client-auth-private-key-jwt = Gatehouse's signing key (private_key_jwt)
console-upstream-scopes = Scopes besides openid, separated by spaces
console-ca-pem = Certificate authority to trust for it, PEM (empty: the system's)
console-metadata-url = The identity provider's metadata URL (https)
console-metadata-xml = Or its metadata document, pasted
console-entity-id = Its entity ID, when the metadata describes several (empty: the only one)
console-require-encrypted = Refuse assertions that are not encrypted
console-accounts = Accounts
console-just-in-time = Create accounts at the first sign-in (just in time)
console-trust-upstream-mfa = The identity provider's second factor satisfies ours
console-mfa-acr-values = acr values that mean a second factor was used, separated by spaces
console-show-on-login = Offer it as a button on the sign-in page
console-username-claim = Claim naming the username
console-email-claim = Claim naming the email address
console-name-claim = Claim naming the display name
console-groups-claim = Claim listing the groups (empty: none)
console-role-map = Groups that give a role, one group=role per line (user, support, org_admin, super_admin)
console-fhir-user-claim = Claim naming the person's FHIR resource, such as Practitioner/123 (SMART fhirUser; empty: none)
console-fhir-user-server = The registered FHIR server it is on (its base URL)
console-default-role = Role of other accounts created just in time
console-add-identity-provider = Add identity provider
console-field-url = { $field }: must be a URL
console-field-method-choice = { $field }: choose one of the methods offered
console-field-role-choice = { $field }: choose one of the roles offered
console-field-role-map-line = { $field }: { $line } is not group=role (user, support, org_admin, super_admin)
console-default-language = Default language (when neither the person nor their browser chose one Gatehouse speaks)
console-default-language-none = None: English
console-default-time-zone = Default time zone for dates

## The overview at /admin (home.html): its dashboard

console-overview = Overview
console-dash-heading = At a glance
console-dash-sign-ins = Successful sign-ins, last 24 hours
console-dash-failures = Failed sign-ins, last 24 hours
console-dash-locked = Accounts locked now
console-dash-emergency = Emergency sessions awaiting review
console-dash-ip-blocks = IP addresses blocked now
console-dash-outbox = Outbox: waiting to be sent
console-dash-outbox-failed = Outbox: could not be sent
console-users-found = { $count ->
    [one] One user matches.
   *[other] { $count } users match.
}
console-users-found-more = More than { $count } users match: the pages stop there, a narrower search finds the others.

## Sortable, paged tables (headings.html, pager.html)

# After a column heading's words, for screen readers: what its link does.
console-sort-ascending = (sort ascending)
console-sort-descending = (sort descending)
console-pages = Pages
console-previous-page = Previous page
console-next-page = Next page
console-page-of = Page { $page } of { $pages }

## Confirming a destructive action (confirm.html)

console-confirm = Confirm
console-cancel = Cancel
console-confirm-end-all-title = End every session of { $user }?
console-confirm-end-all-what = { $user } will be signed out in every browser, and the apps they signed in to lose their tokens. They can sign in again.
console-confirm-end-session-title = End this session of { $user }?
console-confirm-end-session-what = The session that signed in { $started } from { $from } ends: that browser is signed out, and the apps it signed in to lose their tokens. The other sessions of { $user } go on.
# Where a session came from, when nothing is known of it.
console-unknown-place = an unknown place
console-confirm-force-reset-title = Require a new password of { $user }?
console-confirm-force-reset-what = The password of { $user } stops working at once: they are signed out everywhere and mailed a link to choose a new one.
console-confirm-remove-totp-title = Remove the two-step verification of { $user }?
console-confirm-remove-totp-what = Codes from the authenticator app of { $user } no longer work. Where their organisation requires two-step verification, they set it up again at their next sign-in. They are told by mail.
console-confirm-remove-passkey-title = Remove the passkey { $name } of { $user }?
console-confirm-remove-passkey-what = { $user } can no longer sign in with this passkey; their other ways in stay. They are told by mail.
console-confirm-clear-fhir-user-title = Remove the FHIR resource of { $user } on { $server }?
console-confirm-clear-fhir-user-what = The tokens that SMART apps of { $user } get for { $server } no longer say they are { $resource }.
console-confirm-emergency-withdraw-title = Withdraw the emergency access of { $user }?
console-confirm-emergency-withdraw-what = { $user } can no longer break the glass. An emergency window already open runs its course and still awaits review.
console-confirm-delete-connector-title = Delete the identity provider { $name }?
console-confirm-delete-connector-what = Nobody can sign in with { $name } any more, and every link from its identities to accounts is removed. The accounts stay, with any other way in they have.
console-confirm-remove-link-title = Remove the link of { $subject }?
console-confirm-remove-link-what = Whoever signs in at { $provider } as { $subject } no longer signs in here as { $user }. The account stays.
console-confirm-delete-fhir-server-title = Remove the FHIR server { $name }?
console-confirm-delete-fhir-server-what = Gatehouse no longer issues tokens for { $url }, and the FHIR resource each user had on it is forgotten.
console-confirm-remove-logo-title = Remove the logo of { $name }?
console-confirm-remove-logo-what = Its sign-in pages show its name without a logo until another is uploaded.
console-confirm-lift-title = Lift the block on { $ip }?
console-confirm-lift-what = Sign-ins from { $ip } are accepted again at once (it was blocked until { $until }). If failures from it go on, it is blocked again, for longer.

## An organisation's branding (branding.html)

console-branding-link = Branding: name, colours, logo and support words
console-branding = Branding of { $name }
console-back-to-policies = Back to the organisation's policies
console-branding-read-only = Your role may read this branding but not change it.
console-branding-not-saved = The branding was not saved. Correct these fields:
console-branding-intro = What the sign-in, account and error pages and the mails show of this organisation. An empty field keeps Gatehouse's own.
console-branding-words = Name, colours and support
console-brand-name = Name shown on its pages and mails (at most 80 characters)
console-brand-support = Support words under the sign-in form and in mails (at most 500 characters)
console-brand-accent = Accent colour, light pages (#rrggbb)
console-brand-accent-hint = It must reach 4.5:1 against the white page and under white text: a darker colour.
console-brand-accent-dark = Accent colour, dark pages (#rrggbb)
console-brand-accent-dark-hint = It must reach 4.5:1 against the dark page and under dark text: a lighter colour.
console-brand-apps = Client ids and SAML entity IDs it brands, one per line
console-save-branding = Save branding
console-colour-invalid = { $field }: must be a colour written #rrggbb
console-logo = Logo
console-current-logo = The current logo
console-no-logo = No logo: the pages show the name.
console-logo-file = A PNG, JPEG or WebP image, at most 256 KiB
console-upload-logo = Upload logo
console-remove-logo = Remove logo
console-logo-too-large = The logo was not saved: it is larger than 256 KiB.
console-logo-kind = The logo was not saved: it must be a PNG, JPEG or WebP image.
console-logo-not-that-kind = The logo was not saved: the file is not the kind of image its name says.
console-logo-unreadable = The logo was not saved: the upload could not be read, or it is larger than 256 KiB.
