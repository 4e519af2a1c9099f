# The mails Gatehouse sends (templates/mail/*, src/mail/notice.rs). A mail's text and
# HTML versions share these; the HTML escapes them. $username, $name, $org, $passkey,
# $previous, $reason and $context are what people typed; $when, $until, $started and
# $ended are moments already in the reader's language and time zone; $ip and $address
# are client addresses.

## Every mail

mail-hello = Hello { $name },
mail-footer = Sent by the Gatehouse sign-in service. This is an automatic message; replies are not read.
mail-button-fallback = If the button does not work, copy this address into your browser:
mail-choose-new-password = Choose a new password
mail-choose-your-password = Choose your password
mail-reset-my-password = Reset my password
mail-open-my-account = Open my account
mail-your-account-page = Your account page:
mail-not-expected = If you did not expect this, tell your support desk.
mail-open-link-new-password = To choose a new password, open this link:

## A reset link the person asked for

mail-reset-link-subject = Reset your password
mail-reset-link-asked = Someone – hopefully you – asked to reset the password of your account "{ $username }".
mail-reset-link-once = The link works once, until { $until }. Asking again replaces it with a new one.
mail-reset-link-ignore = If you did not ask for this, ignore this message: your password stays as it is.

## A new password an administrator required

mail-forced-reset-subject = You need to choose a new password
mail-forced-reset-asked = An administrator has asked you to choose a new password for your account "{ $username }". Your current password no longer works, and your sessions have been signed out.
mail-forced-reset-once = The link works once, until { $until }. If it has expired, ask for a new one here:

## An invitation to a new account

mail-invitation-subject = Your invitation to { $org }
mail-invitation-created = An account has been created for you at { $org }. Your username is "{ $username }".
mail-invitation-open-link = To choose your password and start using it, open this link:
mail-invitation-once = The link works once, until { $until }. After that, ask your administrator for a new invitation.
mail-invitation-ignore = If you were not expecting this, you can ignore this message.

## The password was changed

mail-password-changed-subject = Your password was changed
mail-password-changed-when = The password of your account "{ $username }" was changed on { $when }. All other sessions have been signed out.
mail-password-changed-when-from = The password of your account "{ $username }" was changed on { $when } from the address { $ip }. All other sessions have been signed out.
mail-password-changed-yours = If this was you, there is nothing more to do.
mail-password-changed-not-yours = If it was not, someone else knows how to sign in as you: ask for a reset link at once, and tell your support desk.

## Sign-in is locked

mail-lockout-subject = Sign-in to your account is locked
mail-lockout-locked = Sign-in to your account "{ $username }" has been locked after several wrong passwords.
mail-lockout-locked-from = Sign-in to your account "{ $username }" has been locked after several wrong passwords, the last from the address { $ip }.
mail-lockout-permanent = The lock stays until an administrator or your support desk lifts it.
mail-lockout-until = You can sign in again after { $until }.
mail-lockout-not-yours = If these attempts were not yours, someone may be guessing your password. Your account is safe while it is locked; to be sure, choose a new password.

## Two-step verification

mail-totp-enrolled-subject = Two-step verification was turned on
mail-totp-enrolled-when = Two-step verification was turned on for your account "{ $username }" on { $when }. From now on, signing in asks for a code from your authenticator app after your password.
mail-totp-enrolled-when-from = Two-step verification was turned on for your account "{ $username }" on { $when } from the address { $ip }. From now on, signing in asks for a code from your authenticator app after your password.
mail-totp-enrolled-not-yours = If this was not you, someone else can sign in as you: choose a new password at once and tell your support desk.
mail-totp-removed-subject = Two-step verification was removed
mail-totp-removed-when = Two-step verification was removed from your account "{ $username }" on { $when }. Signing in now needs your password only.
mail-totp-removed-when-by-admin = Two-step verification was removed from your account "{ $username }" on { $when } by an administrator. Signing in now needs your password only.
mail-totp-removed-again = You can turn it on again from your account page.

## Passkeys

mail-passkey-added-subject = A passkey was added to your account
mail-passkey-added-when = A passkey named "{ $passkey }" was added to your account "{ $username }" on { $when }. It can now sign in as you.
mail-passkey-added-when-from = A passkey named "{ $passkey }" was added to your account "{ $username }" on { $when } from the address { $ip }. It can now sign in as you.
mail-passkey-added-not-yours = If this was not you, someone else can sign in as you: remove the passkey from your account page, choose a new password at once and tell your support desk.
mail-passkey-removed-subject = A passkey was removed from your account
mail-passkey-removed-when = The passkey named "{ $passkey }" was removed from your account "{ $username }" on { $when }. It can no longer sign in as you.
mail-passkey-removed-when-by-admin = The passkey named "{ $passkey }" was removed from your account "{ $username }" on { $when } by an administrator. It can no longer sign in as you.
mail-passkey-removed-lost = If you lose every passkey, sign in with your password and a recovery code, or ask your administrator to reset your sign-in.
mail-passkey-renamed-subject = A passkey of your account was renamed
mail-passkey-renamed-when = The passkey "{ $previous }" of your account "{ $username }" was renamed "{ $passkey }" on { $when }.
mail-passkey-renamed-not-yours = If this was not you, someone is signed in as you: check your passkeys and sessions on your account page, and tell your support desk.

## To an organisation's support contact: a lock or a block
## (the subject's "[Gatehouse]" tag is added by the code)

mail-alert-locked-subject = Account locked: { $username }
mail-alert-blocked-subject = Address blocked: { $address }
mail-alert-locked = Gatehouse has locked sign-in for the account "{ $username }" in { $org } after repeated failed sign-ins.
mail-alert-blocked = Gatehouse has blocked the client address { $address } for { $org }: too many failed sign-ins came from it, across any usernames.
mail-label-locked-until = Locked until
mail-locked-until-unlocked = an administrator or support unlocks it (permanent lock)
mail-label-last-attempt-from = Last attempt from
mail-label-blocked-until = Blocked until
mail-label-times-blocked = Times blocked
mail-times-blocked = { $count } (each repeat doubles the block)
mail-alert-review = Review it, and lift the lock or block if it is not an attack, in the admin console.
mail-open-admin-console = Open the admin console

## Emergency access ("breaking the glass"), to the support contact and privacy officer

mail-emergency-started-subject = Emergency access by { $username }
mail-emergency-ended-subject = Emergency access ended: { $username }
mail-emergency-started = "{ $username }" in { $org } has broken the glass: emergency access is open for them until { $until }.
# $reason is one of mail-end-* below, or the stored reason as it is.
mail-emergency-ended = The emergency access of "{ $username }" in { $org } has ended: { $reason }.
mail-end-expired = its time ran out
mail-end-ended-by-user = the user ended it
mail-end-signed-out = the user signed out
mail-label-started = Started
mail-label-ended = Ended
mail-label-until = Until
mail-label-reason-given = Reason given
mail-label-patient-or-context = Patient or context
mail-label-asked-for-by = Asked for by
mail-asked-for-by-user = the user, from their account page
mail-emergency-awaits-review = Every emergency session awaits a review by a second administrator.
mail-review-it = Review it in the admin console
# The text version's words before the link to the admin console.
mail-review-it-there = Review it in the admin console:
# The subject, after "[Gatehouse] ": $reviews is mail-overdue-reviews.
mail-overdue-subject = { $reviews } in { $org }
mail-overdue-reviews = { $count ->
    [one] { $count } emergency access review overdue
   *[other] { $count } emergency access reviews overdue
}
# $hours is mail-overdue-hours.
mail-overdue-intro = These emergency sessions in { $org } have awaited review for more than { $hours }:
mail-overdue-hours = { $count ->
    [one] { $count } hour
   *[other] { $count } hours
}
mail-label-user = User
mail-label-reason = Reason
mail-overdue-session = "{ $username }", started { $started }: { $reason }
mail-overdue-context = patient or context: { $context }
mail-overdue-sign-off = A second administrator (never the user themself) signs each off with a note in the admin console.
mail-overdue-daily = This reminder comes daily while a review stays open.
mail-review-them = Review them in the admin console
