# The sign-in pages: password, second step, enrolment, required change, reset,
# invitation, emergency access, consent, the patient picker (templates/*.html).

sign-in = Sign in
username = Username
username-or-work-email = Username or work email
password = Password
identifier-first-hint = Signing in with your organisation's account? Enter your work email and leave the password empty.
sign-in-with-passkey = Sign in with a passkey
or-sign-in-with = Or sign in with
forgot-password = Forgot your password?
link-not-connected = Your { $connector } sign-in is not connected to a Gatehouse account yet.
sign-in-failed = Incorrect username or password.
sign-in-locked = Too many failed attempts: sign-in is locked for this username. Try again later or ask your administrator to unlock it.
enter-your-password = Enter your password.
username-too-long = The username is too long.
sign-in-expired = Your sign-in expired
sign-in-expired-text = This sign-in is no longer valid: it timed out or was already used. Please start again.
start-again = Start again
signed-out = Signed out
signed-out-text = You are signed out. Close the browser if this is a shared computer.
sign-in-again = Sign in again

choose-new-password = Choose a new password
choose-your-password = Choose your password
password-change-required = Your password must be changed before you continue.
new-password = New password
new-password-again = New password again
set-password-and-continue = Set password and continue
set-password = Set password
invitation-welcome = Welcome. Choose the password you will sign in with, for your account:
reset-for-account = Choose a new password for your account:
reset-signs-out = Every session of the account will be signed out.

reset-your-password = Reset your password
reset-request-text = Enter your username or the email address of your account. We will send a link to choose a new password to the account's email address.
username-or-email = Username or email address
send-me-a-link = Send me a link

two-step = Two-step verification
use-your-passkey = Use your passkey: your device asks for your fingerprint, face or PIN.
use-a-passkey = Use a passkey
passkeys-need-javascript = Passkeys need JavaScript. Without it, use a code below.
or-use-a-code = Or use a code
passkey-only = Your organisation accepts only a passkey as your second step.
passkey-only-lost-totp = If you have lost your passkeys, enter the code from your authenticator app or one of your recovery codes, and you will register a new passkey before you go on.
passkey-only-lost = If you have lost your passkeys, enter one of your recovery codes, and you will register a new passkey before you go on.
passkey-only-none-totp = You have none yet: enter the code from your authenticator app or one of your recovery codes, and you will register a passkey before you go on.
passkey-only-none = You have none yet: enter one of your recovery codes, and you will register a passkey before you go on.
passkey-only-else = Without either, ask your administrator to reset your sign-in.
enter-totp-code = Enter the 6-digit code from your authenticator app. If you have lost it, enter one of your recovery codes.
lost-passkeys-recovery = If you have lost your passkeys, enter one of your recovery codes. Without one, ask your administrator to reset your sign-in.
code = Code
verify = Verify

set-up-two-step = Set up two-step verification
two-step-required = Your organisation requires a second step when you sign in. Set it up now to continue.
totp-step-open-app = Open an authenticator app (for example FreeOTP, Google Authenticator or Microsoft Authenticator).
totp-step-scan = Scan this code, or enter the key below by hand.
totp-step-enter = Enter the 6-digit code the app shows.
totp-qr-alt = QR code for your authenticator app
totp-key = Key:
code-from-app = Code from the app
turn-on-two-step = Turn on two-step verification

your-recovery-codes = Your recovery codes
recovery-codes-text = Each code signs you in once if you lose your authenticator. Keep them somewhere safe: they will not be shown again.
saved-them-continue = I have saved them — continue

create-a-passkey = Create a passkey
passkey-required-intro = Your organisation requires a passkey to sign in: a key your device keeps, unlocked with your fingerprint, face or PIN, that works only on this site, so it cannot be phished.
passkey-name = Name for this passkey
my-passkey = My passkey
create-passkey = Create passkey
creating-passkey-needs-javascript = Creating a passkey needs JavaScript: turn it on for this site, or ask your administrator.

emergency-access = Emergency access
emergency-asked-by = { $app } asks for emergency access.
emergency-explained = { $minutes ->
    [one] Emergency access opens records you would not normally see, for one minute. It is recorded, your organisation's support contact and privacy officer are told at once, and a second administrator reviews it. It is never extended: when it ends, break the glass again with a new reason.
   *[other] Emergency access opens records you would not normally see, for { $minutes } minutes. It is recorded, your organisation's support contact and privacy officer are told at once, and a second administrator reviews it. It is never extended: when it ends, break the glass again with a new reason.
}
patient-or-context = Patient or context
emergency-reason-label = Reason (10 to 500 characters)
break-the-glass = Break the glass
continue-without-emergency = Continue without emergency access
emergency-not-designated = You are not designated for emergency access. Ask your administrator if you need it.

allow-app = Allow { $app }?
app-asks-to = { $app } asks to:
what-app-may-do = What { $app } may do. Untick what you do not want it to do.
needed = (needed)
consent-remembered = Gatehouse remembers your answer for { $app }. You can withdraw it on your account page.
allow = Allow
deny = Deny

choose-a-patient = Choose a patient
picker-intro = { $app } asks to open a patient's record on { $server }. Find the patient, then choose them.
patients-name = Patient's name
search = Search
no-patient-by-name = No patient by that name.
patients-named-like = Patients named like “{ $name }”
born = Born
identifier = Identifier
choose-named = Choose { $name }
password-too-long = The password is too long.
password-missing = Enter a new password.
passwords-differ = The two new passwords do not match.
password-too-short = { $min ->
    [one] Use at least 1 character.
   *[other] Use at least { $min } characters.
}
password-over-max = { $max ->
    [one] Use at most 1 character.
   *[other] Use at most { $max } characters.
}
password-needs-upper = Add an upper-case letter.
password-needs-lower = Add a lower-case letter.
password-needs-digit-or-symbol = Add a digit or a symbol.
password-has-username = Do not use your username in your password.
password-has-email = Do not use your email address in your password.
password-too-common = This password is too common or easy to guess.
password-reused = { $history ->
    [one] Use a password different from your last password.
   *[other] Use a password you have not used for your last { $history } passwords.
}
code-too-long = The code is too long.
enter-the-code = Enter the code from your authenticator app.
wrong-code = That code is not correct, or was already used.
enter-code-or-recovery-code = Enter the 6-digit code from your authenticator app, or a recovery code.
enrol-expired = This setup timed out. Add the new key below to your app and enter its code.
passkey-answer-too-large = The passkey's answer is too large.
passkey-not-created = The browser did not create a passkey. Try again.
passkey-setup-timed-out = This setup timed out. Create the passkey again.
passkey-not-registered = This passkey could not be registered. Try again, or use another.
passkey-kind-not-allowed = Your organisation does not allow this kind of passkey.
passkey-already-or-full = This passkey is already registered, or the account has as many as it may keep.
passkey-could-not-be-used = That passkey could not be used. Try again, or use a code.
passkey-name-missing = Give the passkey a name.
passkey-name-too-long = A passkey's name is at most 64 characters, without control characters.
choose-an-action = Choose an action.
emergency-refused-not-designated = You are not designated for emergency access. Ask your administrator.
emergency-refused-no-second-factor = Emergency access needs a sign-in with your second factor. Sign out, and sign in again with it.
emergency-reason-too-short = { $min ->
    [one] The reason must be at least 1 character.
   *[other] The reason must be at least { $min } characters.
}
emergency-reason-too-long = { $max ->
    [one] The reason must be at most 1 character.
   *[other] The reason must be at most { $max } characters.
}
emergency-reason-characters = The reason may contain words and punctuation, not control characters.
emergency-refused-context = Pick one of the contexts the application offered.
emergency-refused-open = Emergency access is already open for this session, until { $until }. It is never extended: when it ends, break the glass again with a new reason.
emergency-refused-inactive = This account cannot use emergency access.
sign-in-refused = Sign-in refused
upstream-account-inactive = This account cannot sign in. Ask your administrator.
upstream-did-not-identify = Your organisation's identity provider did not say who you are (a username and an email address are needed). Ask your administrator.
your-identity-provider = your organisation's identity provider
upstream-unknown = Sign-in option not available
upstream-unknown-text = This way of signing in does not exist or is switched off. Sign in another way or ask your administrator.
upstream-unreachable = Could not reach your organisation
upstream-unreachable-text = { $name } could not be reached. Try again in a few minutes, or sign in another way.
upstream-denied = Not signed in
upstream-denied-text = { $name } did not sign you in. Start again to try once more.
upstream-rejected-text = The answer from { $name } could not be trusted, so you are not signed in. Start again; if it keeps happening, tell your administrator.
link-not-linked-yet = Sign in with your existing account once to connect it.
link-account-exists = An account with your name or email address already exists. Sign in with it once to connect it.
enter-username-or-email = Enter your username or the email address of your account.
check-your-email = Check your email
reset-link-sent = { $minutes ->
    [one] If an account matches what you entered, a link to choose a new password is on its way to the account's email address. It works once, within a minute; asking again replaces it. Nothing arrived? Check your spam folder, or ask your administrator.
   *[other] If an account matches what you entered, a link to choose a new password is on its way to the account's email address. It works once, within { $minutes } minutes; asking again replaces it. Nothing arrived? Check your spam folder, or ask your administrator.
}
link-invalid = This link is invalid or has expired
reset-link-invalid = A reset link works once, for a limited time, and only the newest one sent to you works; changing your password also ends it. Ask for a new link.
ask-for-new-link = Ask for a new link
invitation-link-invalid = An invitation link works once, for a limited time, and only the newest one sent to you works. Ask your administrator for a new invitation.
go-to-sign-in = Go to sign in
password-set = Your password was set
password-set-text = Sign in with your new password. Every session of your account was signed out.
account-ready = Your account is ready
account-ready-text = Sign in with your username and the password you chose.
# What a scope lets an app do (src/pages/mod.rs, scope_words). $resource is the FHIR
# resource type (Observation); $words is it in English words (observations).
scope-clinical = { $verbs } { $whose }
scope-limited = { $text } (some of them only)
scope-create = create
scope-read = read
scope-update = update
scope-delete = delete
scope-search = search
list-and = { $rest } and { $last }
scope-patient-all = all of the patient's records
scope-user-all = all records you may see
scope-system-all = all records
# `.arguments` lists what the code gives a message beyond what English itself uses.
scope-patient-resource = the patient's { $words }
    .arguments = { $resource } { $words }
scope-user-resource = { $words } you may see
    .arguments = { $resource } { $words }
scope-system-resource = all { $words }
    .arguments = { $resource } { $words }
scope-launch = Open in the patient and visit your EHR has open
scope-launch-patient = Know which patient's record to open
scope-launch-encounter = Know which visit to open
scope-fhir-user = Know who you are in the clinical record
scope-openid = Know that it is you who signed in
scope-profile = See your name and username
scope-email = See your email address
scope-offline-access = Keep access after you sign out, until you withdraw it
scope-online-access = Keep access while you are signed in
scope-other = Use “{ $scope }”
consent-expired = This question has expired
consent-expired-text = Answering took too long, or the question was opened in another browser. Open the application again.
form-too-large = The form is too large.
pick-expired = This choice has expired
pick-expired-text = Choosing a patient took too long, or was started in another browser. Open the application again.
pick-name-length = Type 2 to 100 letters of the patient's name.
pick-search-failed = The FHIR server did not answer the search. Try again.
pick-from-results = Choose a patient from the search results.
sign-out-question = Sign out?
sign-out-refused = Sign-out refused
still-signed-in = You are still signed in to Gatehouse
sign-out-refused-text = The application asked Gatehouse to sign you out, and Gatehouse refused: { $reason }
sign-out-refused-next = Returning to the application tells it so. To end your Gatehouse session, sign out at Gatehouse.
return-to-app = Return to the application
sign-out-of-gatehouse = Sign out of Gatehouse
returning-to-app = Returning you to the application…
skip-silent-app = This application does not answer: continue signing out without it
sign-in-link-invalid = This sign-in link is not valid
# A protocol's refusal, in its own (English) words, for the application's developer.
protocol-refusal = { $detail }
app-not-for-you = This application is not available to you
app-not-for-you-text = The application you came from is not open to users of your organisation, so Gatehouse has not signed you in to it. If you think you should have access, ask your administrator.
sign-out-link-invalid = This sign-out link is not valid
sign-out-message-invalid = This sign-out message is not valid
sign-out-request-invalid = This sign-out request is not valid
sign-in-request-invalid = This sign-in request is not valid
