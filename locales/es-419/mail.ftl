# The mails Gatehouse sends (templates/mail/*, src/mail/notice.rs). A mail's text and
# HTML versions share these; the HTML escapes them. $username, $name, $org, $passkey,
# $previous, $reason and $context are what people typed; $when, $until, $started and
# $ended are moments already in the reader's language and time zone ("24 nov 2026,
# 10:15 UTC": "el { $when }", "hasta el { $until }"); $ip and $address are client
# addresses. Formal "usted".

## Every mail

mail-hello = Hola, { $name }:
mail-footer = Enviado por el servicio de inicio de sesión Gatehouse. Este es un mensaje automático; las respuestas no se leen.
mail-button-fallback = Si el botón no funciona, copie esta dirección en su navegador:
mail-choose-new-password = Elegir una nueva contraseña
mail-choose-your-password = Elegir su contraseña
mail-reset-my-password = Restablecer mi contraseña
mail-open-my-account = Abrir mi cuenta
mail-your-account-page = La página de su cuenta:
mail-not-expected = Si no esperaba este cambio, informe a su mesa de ayuda.
mail-open-link-new-password = Para elegir una nueva contraseña, abra este enlace:

## A reset link the person asked for

mail-reset-link-subject = Restablezca su contraseña
mail-reset-link-asked = Alguien (esperamos que usted) pidió restablecer la contraseña de su cuenta “{ $username }”.
mail-reset-link-once = El enlace funciona una sola vez, hasta el { $until }. Si lo vuelve a pedir, se reemplaza por uno nuevo.
mail-reset-link-ignore = Si usted no lo pidió, ignore este mensaje: su contraseña no cambia.

## A new password an administrator required

mail-forced-reset-subject = Debe elegir una nueva contraseña
mail-forced-reset-asked = Un administrador le pidió elegir una nueva contraseña para su cuenta “{ $username }”. Su contraseña actual ya no funciona y se cerraron sus sesiones.
mail-forced-reset-once = El enlace funciona una sola vez, hasta el { $until }. Si ya venció, pida uno nuevo aquí:

## An invitation to a new account

mail-invitation-subject = Su invitación a { $org }
mail-invitation-created = Se creó una cuenta para usted en { $org }. Su nombre de usuario es “{ $username }”.
mail-invitation-open-link = Para elegir su contraseña y empezar a usar su cuenta, abra este enlace:
mail-invitation-once = El enlace funciona una sola vez, hasta el { $until }. Después, pida a su administrador una nueva invitación.
mail-invitation-ignore = Si no esperaba este mensaje, puede ignorarlo.

## The password was changed

mail-password-changed-subject = Se cambió su contraseña
mail-password-changed-when = La contraseña de su cuenta “{ $username }” se cambió el { $when }. Se cerraron todas las demás sesiones.
mail-password-changed-when-from = La contraseña de su cuenta “{ $username }” se cambió el { $when } desde la dirección { $ip }. Se cerraron todas las demás sesiones.
mail-password-changed-yours = Si fue usted, no necesita hacer nada más.
mail-password-changed-not-yours = Si no fue usted, otra persona sabe cómo iniciar sesión con su cuenta: pida de inmediato un enlace para restablecer la contraseña e informe a su mesa de ayuda.

## Sign-in is locked

mail-lockout-subject = Se bloqueó el inicio de sesión en su cuenta
mail-lockout-locked = Se bloqueó el inicio de sesión en su cuenta “{ $username }” después de varias contraseñas incorrectas.
mail-lockout-locked-from = Se bloqueó el inicio de sesión en su cuenta “{ $username }” después de varias contraseñas incorrectas; la última, desde la dirección { $ip }.
mail-lockout-permanent = El bloqueo se mantiene hasta que un administrador o su mesa de ayuda lo levante.
mail-lockout-until = Podrá volver a iniciar sesión después del { $until }.
mail-lockout-not-yours = Si esos intentos no fueron suyos, alguien podría estar intentando adivinar su contraseña. Su cuenta está protegida mientras siga bloqueada; para mayor seguridad, elija una nueva contraseña.

## Two-step verification

mail-totp-enrolled-subject = Se activó la verificación en dos pasos
mail-totp-enrolled-when = Se activó la verificación en dos pasos en su cuenta “{ $username }” el { $when }. A partir de ahora, al iniciar sesión se le pedirá, después de su contraseña, un código de su aplicación de autenticación.
mail-totp-enrolled-when-from = Se activó la verificación en dos pasos en su cuenta “{ $username }” el { $when } desde la dirección { $ip }. A partir de ahora, al iniciar sesión se le pedirá, después de su contraseña, un código de su aplicación de autenticación.
mail-totp-enrolled-not-yours = Si no fue usted, otra persona puede iniciar sesión con su cuenta: elija de inmediato una nueva contraseña e informe a su mesa de ayuda.
mail-totp-removed-subject = Se quitó la verificación en dos pasos
mail-totp-removed-when = Se quitó la verificación en dos pasos de su cuenta “{ $username }” el { $when }. Ahora, para iniciar sesión, solo se necesita su contraseña.
mail-totp-removed-when-by-admin = Un administrador quitó la verificación en dos pasos de su cuenta “{ $username }” el { $when }. Ahora, para iniciar sesión, solo se necesita su contraseña.
mail-totp-removed-again = Puede volver a activarla desde la página de su cuenta.

## Passkeys

mail-passkey-added-subject = Se agregó una llave de acceso a su cuenta
mail-passkey-added-when = Se agregó una llave de acceso llamada “{ $passkey }” a su cuenta “{ $username }” el { $when }. Desde ahora, con ella se puede iniciar sesión en su cuenta.
mail-passkey-added-when-from = Se agregó una llave de acceso llamada “{ $passkey }” a su cuenta “{ $username }” el { $when } desde la dirección { $ip }. Desde ahora, con ella se puede iniciar sesión en su cuenta.
mail-passkey-added-not-yours = Si no fue usted, otra persona puede iniciar sesión como usted: quite la llave de acceso desde la página de su cuenta, elija de inmediato una nueva contraseña e informe a su mesa de ayuda.
mail-passkey-removed-subject = Se quitó una llave de acceso de su cuenta
mail-passkey-removed-when = Se quitó la llave de acceso llamada “{ $passkey }” de su cuenta “{ $username }” el { $when }. Ya no se puede usar para iniciar sesión en su cuenta.
mail-passkey-removed-when-by-admin = Un administrador quitó la llave de acceso llamada “{ $passkey }” de su cuenta “{ $username }” el { $when }. Ya no se puede usar para iniciar sesión en su cuenta.
mail-passkey-removed-lost = Si pierde todas sus llaves de acceso, inicie sesión con su contraseña y un código de recuperación, o pida a su administrador que restablezca su inicio de sesión.
mail-passkey-renamed-subject = Se cambió el nombre de una llave de acceso de su cuenta
mail-passkey-renamed-when = La llave de acceso “{ $previous }” de su cuenta “{ $username }” pasó a llamarse “{ $passkey }” el { $when }.
mail-passkey-renamed-not-yours = Si no fue usted, alguien inició sesión como usted: revise sus llaves de acceso y sus sesiones en la página de su cuenta, e informe a su mesa de ayuda.

## To an organisation's support contact: a lock or a block
## (the subject's "[Gatehouse]" tag is added by the code)

mail-alert-locked-subject = Cuenta bloqueada: { $username }
mail-alert-blocked-subject = Dirección bloqueada: { $address }
mail-alert-locked = Gatehouse bloqueó el inicio de sesión de la cuenta “{ $username }” en { $org } después de varios intentos fallidos.
mail-alert-blocked = Gatehouse bloqueó la dirección de cliente { $address } para { $org }: desde ella llegaron demasiados intentos fallidos de inicio de sesión, con cualquier nombre de usuario.
mail-label-locked-until = Bloqueada hasta
mail-locked-until-unlocked = que un administrador o soporte la desbloquee (bloqueo permanente)
mail-label-last-attempt-from = Último intento desde
mail-label-blocked-until = Bloqueada hasta
mail-label-times-blocked = Veces bloqueada
mail-times-blocked = { $count } (cada repetición duplica el bloqueo)
mail-alert-review = Revíselo en la consola de administración y levante el bloqueo si no se trata de un ataque.
mail-open-admin-console = Abrir la consola de administración

## Emergency access ("romper el cristal"), to the support contact and privacy officer

mail-emergency-started-subject = Acceso de emergencia de { $username }
mail-emergency-ended-subject = Terminó el acceso de emergencia: { $username }
mail-emergency-started = “{ $username }” en { $org } rompió el cristal: tiene acceso de emergencia abierto hasta el { $until }.
# $reason is one of mail-end-* below, or the stored reason as it is.
mail-emergency-ended = Terminó el acceso de emergencia de “{ $username }” en { $org }: { $reason }.
mail-end-expired = se agotó su tiempo
mail-end-ended-by-user = el usuario lo terminó
mail-end-signed-out = el usuario cerró sesión
mail-label-started = Inicio
mail-label-ended = Fin
mail-label-until = Hasta
mail-label-reason-given = Motivo indicado
mail-label-patient-or-context = Paciente o contexto
mail-label-asked-for-by = Solicitado por
mail-asked-for-by-user = el usuario, desde la página de su cuenta
mail-emergency-awaits-review = Toda sesión de emergencia queda a la espera de la revisión de un segundo administrador.
mail-review-it = Revisarla en la consola de administración
# The text version's words before the link to the admin console.
mail-review-it-there = Revísela en la consola de administración:
# The subject, after "[Gatehouse] ": $reviews is mail-overdue-reviews.
mail-overdue-subject = { $reviews } en { $org }
mail-overdue-reviews = { $count ->
    [one] { $count } revisión de acceso de emergencia vencida
   *[other] { $count } revisiones de acceso de emergencia vencidas
}
# $hours is mail-overdue-hours.
mail-overdue-intro = Estas sesiones de emergencia en { $org } llevan más de { $hours } a la espera de revisión:
mail-overdue-hours = { $count ->
    [one] { $count } hora
   *[other] { $count } horas
}
mail-label-user = Usuario
mail-label-reason = Motivo
mail-overdue-session = “{ $username }”, iniciada el { $started }: { $reason }
mail-overdue-context = paciente o contexto: { $context }
mail-overdue-sign-off = Un segundo administrador (nunca el propio usuario) aprueba cada una con una nota en la consola de administración.
mail-overdue-daily = Este recordatorio llega a diario mientras una revisión siga pendiente.
mail-review-them = Revisarlas en la consola de administración
