# The account pages (templates/account.html, totp_manage.html, passkeys.html).

your-account = Your account
email = Email
organisation = Organisation
role = Role
on = On
off = Off
manage = Manage
set-up = Set up
passkeys = Passkeys
passkey-count = { $count ->
    [0] None
    [one] One passkey
   *[other] { $count } passkeys
}
manage-passkeys = Manage passkeys
emergency-open = Emergency access is open
emergency-open-until = until { $until }.
emergency-reason-was = Reason: { $reason }
end-emergency = End emergency access now
emergency-designated = You may break the glass in an emergency. It is recorded, alerted and reviewed.
emergency-access-link = Emergency access…
change-password = Change password
current-password = Current password
apps-you-allowed = Apps you allowed
allowed-since = since { $since }, may:
withdraw-access = Withdraw { $app }'s access
where-signed-in = Where you are signed in
signed-in = Signed in
last-active = Last active
from = From
this-browser = (this browser)
sign-out-session = Sign out this session
sign-out = Sign out

two-step-is-on = Two-step verification is on
unused-recovery-codes = Unused recovery codes:
new-recovery-codes = New recovery codes
make-new-recovery-codes-old-stop = Make new recovery codes (the old ones stop working)
turn-off = Turn off
current-code = Current code
turn-off-two-step = Turn off two-step verification

your-passkeys = Your passkeys
passkeys-intro = A passkey signs you in without a password, or as your second step after it. Your device keeps it and unlocks it with your fingerprint, face or PIN; it works only on this site, so it cannot be phished.
no-passkey-yet = You have no passkey yet.
kind = Kind
added = Added
last-used = Last used
rename = Rename
remove = Remove
passkey-synced = Synced between your devices
passkey-one-device = Kept on one device
new-name = New name
remove-named = Remove { $name }
passkeys-unavailable = Passkeys are not available for your account here.
add-a-passkey = Add a passkey
passkey-name-example = Work laptop
adding-passkey-needs-javascript = Adding a passkey needs JavaScript.
confirm-before-passkeys = To add or remove a passkey, confirm it is you first.
if-you-lose-passkeys = If you lose your passkeys
lost-passkeys-how = { $left ->
    [one] Sign in with your password and your last recovery code, then add a new passkey. Without a recovery code, ask your administrator to reset your sign-in.
   *[other] Sign in with your password and one of your recovery codes ({ $left } left), then add a new passkey. Without a recovery code, ask your administrator to reset your sign-in.
}
make-new-recovery-codes = Make new recovery codes
language-and-time-zone = Language and time zone
language = Language
language-automatic = As my browser says
time-zone = Time zone
time-zone-automatic = My organisation's
save = Save
notice-password-changed = Your password was changed.
notice-totp-removed = Two-step verification was turned off.
notice-emergency-opened = Emergency access is open. Support and your privacy officer have been told.
notice-emergency-ended = Emergency access has ended.
notice-consent-withdrawn = The app's access was withdrawn. It will ask again if you use it.
notice-preferences-saved = Your language and time zone were saved.
current-password-wrong = Your current password is not correct.
password-changes-locked = Too many failed attempts: password changes are locked for now.
unknown-session = Unknown session.
unknown-app = Unknown app.
form-stale = This form has expired or was not sent from this browser. Please reload the page.
unknown-language = Gatehouse does not speak that language.
unknown-time-zone = That is not a time zone Gatehouse knows.
password-or-code-wrong = The password or the code is not correct.
notice-passkey-added = Your passkey was added.
notice-passkey-removed = The passkey was removed.
notice-passkey-renamed = The passkey was renamed.
passkeys-sign-in-again = To change your passkeys, sign in again first.
sign-in-first = Sign in first.
